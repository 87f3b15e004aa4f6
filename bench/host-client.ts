// What a command served by a resident host costs through each client (figures, never pass/fail):
// `tidemark checkpoint-list` and `checkpoint-create-as` (2 disks) on a lab VM, with `tidemark host`
// running, through bin/tidemark as an admin runs it (the native thin client, bin/tidemark-client.c)
// and through the Node thin client (TIDEMARK_CLI_MODE=bundle: bin/tidemark.js → out/cli/client.cjs),
// interleaved in every round, beside `node -e 0` (Node's bare start). Wall time, medians [min..max],
// and the paired native ÷ Node ratio per command.
// Run: npx tsx bench/host-client.ts [--rounds 20]   (npm run build:node first: the client must be built)

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { median, stats } from './measure';
import { startHost } from './peers/host';
import { load, nodeEnv, run } from './peers/proc';

const ROOT = path.join(__dirname, '..');
const COMMAND = path.join(ROOT, 'bin', 'tidemark');
const MiB = 1024 * 1024;

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = Number(i >= 0 ? process.argv[i + 1] : 20);
  const client = path.join(ROOT, 'out', 'cli', 'tidemark-client');
  if (!fs.existsSync(client)) throw new Error(`${client} is not built: npm run build:node (needs cc)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmhc-'));
  const state = path.join(dir, 'state');
  let host: Awaited<ReturnType<typeof startHost>> | undefined;
  try {
    const lab = await startLab({ dir: path.join(dir, 'lab'), disks: [{ name: 'vda', sizeBytes: 1024 * MiB }, { name: 'vdb', sizeBytes: 512 * MiB }] });
    const common = ['--state-dir', state, '--connect', lab.qmpSecondary];
    host = await startHost(state);
    const clients = { native: nodeEnv({ TIDEMARK_DEBUG: '' }), node: nodeEnv({ TIDEMARK_DEBUG: '', TIDEMARK_CLI_MODE: 'bundle' }) };
    const ms = new Map<string, number[]>();
    const add = (k: string, v: number) => ms.set(k, [...(ms.get(k) ?? []), v]);
    // warm-up: the VM recorded, the host's connection open, the Node client's code cache written
    for (const env of Object.values(clients)) await run(COMMAND, [...common, 'checkpoint-list'], { env });
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? (['node', 'native'] as const) : (['native', 'node'] as const);
      add('node -e 0', (await run('node', ['-e', '0'], { env: nodeEnv() })).ms);
      for (const c of order) {
        const list = await run(COMMAND, [...common, 'checkpoint-list'], { env: clients[c] });
        add(`${c}: checkpoint-list`, list.ms);
        const cp = `hc${n++}`;
        const made = await run(COMMAND, [...common, 'checkpoint-create-as', cp, '--diskspec', 'vda', '--diskspec', 'vdb'], { env: clients[c] });
        if (!/created/.test(made.stdout)) throw new Error(`${c}: unexpected output ${made.stdout} ${made.stderr}`);
        add(`${c}: checkpoint-create-as (2 disks)`, made.ms);
        await run(COMMAND, [...common, 'checkpoint-delete', cp], { env: clients[c] });
      }
      process.stderr.write(`  round ${r + 1}/${rounds} (load ${load()})\n`);
    }
    console.log(`${rounds} interleaved rounds, a resident host serving the state folder; load ${load()}`);
    const width = Math.max(...[...ms.keys()].map((k) => k.length));
    for (const [k, xs] of ms) console.log(`  ${k.padEnd(width)} ${stats(xs)}`);
    for (const what of ['checkpoint-list', 'checkpoint-create-as (2 disks)']) {
      const [a, b] = [ms.get(`native: ${what}`)!, ms.get(`node: ${what}`)!];
      const paired = median(a.map((x, j) => x / b[j]!));
      console.log(`  ${what}: native ÷ Node client ${paired.toFixed(2)}× paired median; ${(median(b) - median(a)).toFixed(1)} ms less`);
    }
  } finally {
    await host?.stop();
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
