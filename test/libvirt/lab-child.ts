// A test process that defines a lab domain and then ends badly, for lab.itest.ts:
//   exit: process.exit() without closing the lab · wait: block until a signal arrives
import { LibvirtTestLab } from './lab';

async function main(): Promise<void> {
  const mode = process.argv[2];
  const lab = await LibvirtTestLab.open();
  const d = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 8 }] });
  process.stdout.write(`${JSON.stringify({ uuid: d.uuid, name: d.name, dir: lab.dir })}\n`);
  if (mode === 'exit') process.exit(0);
  setInterval(() => undefined, 1000);
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
