// One lock per domain and process: a backup session, a restore and a checkpoint change never change
// a domain's checkpoints at once. Its own module so the driver takes it without loading the backup code.

const locks = new Map<string, Promise<unknown>>();

export async function withDomainLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = locks.get(key) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(fn);
  locks.set(key, mine);
  try {
    return await mine;
  } finally {
    if (locks.get(key) === mine) locks.delete(key);
  }
}
