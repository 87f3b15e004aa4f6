// Waits for several promises like Promise.all, but rejects only once every one has settled (with the
// first rejection in order), so nothing started is left running unobserved: no NBD request left
// dangling, no connection or file a rollback would miss.

export async function settleAll<T extends readonly Promise<unknown>[]>(ps: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const rs = await Promise.allSettled(ps);
  const failed = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return rs.map((r) => (r as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}
