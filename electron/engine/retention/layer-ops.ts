// The file operations retention performs on qcow2 layers, behind an interface so the crash-safety
// logic of execute.ts can also be driven by a fast fake in unit tests. The real implementation
// runs stock qemu-img:
//
//   commit  `qemu-img commit -q -f qcow2 -b INTO TOP`: the data of TOP and every layer between it
//           and INTO lands in INTO (-b implies -d: TOP itself is left as it was). While it runs and
//           after, TOP still reads the same through its unchanged backing chain, because INTO only
//           receives clusters that TOP or a layer above INTO already covers.
//   rebase  `qemu-img rebase -q -f qcow2 -b NEW -F qcow2 FILE` (safe mode; -b "" makes a full):
//           copies into FILE what its old chain showed and the new one would not.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { checksumFile, type FileChecksum } from '../backup/checksum';
import { imageInfo, QEMU_IMG_MISSING, qemuImgMessage } from '../backup/qemuimg';
import { PRIVATE_FILE_MODE } from '../../os/atomic-file';
import { tiedProgramMissing, tiedToThisProcess } from '../../os/tied-child';

export interface HelperHooks {
  /** Called with the helper process's pid as soon as it runs (the journal records it). */
  onSpawn(pid: number): void;
}

export interface LayerOps {
  /** The backing file name written in the layer's header (undefined: none). */
  backingOf(file: string): Promise<string | undefined>;
  /** Commits `top` (and the layers between) into `into`, an image of top's backing chain. */
  commit(top: string, into: string, hooks: HelperHooks): Promise<void>;
  /** Safe rebase of `file` onto `newBacking` (a name relative to the file's folder; undefined: standalone). */
  rebase(file: string, newBacking: string | undefined, hooks: HelperHooks): Promise<void>;
  /** A private copy of `src` at `dst` (a reflink where the file system can). */
  copy(src: string, dst: string): void;
  /** The checksum a rewritten layer is recorded with (BLAKE3 for real layers). */
  checksum(file: string): Promise<FileChecksum>;
}

function runHelper(args: string[], what: string, hooks: HelperHooks): Promise<void> {
  return new Promise((resolve, reject) => {
    // Dies with this process (os/tied-child.ts): a killed prune leaves no merge writing behind it.
    const run = tiedToThisProcess('qemu-img', args);
    const child = spawn(run.cmd, run.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => (stderr += s.slice(0, 4096)));
    child.once('spawn', () => {
      try {
        hooks.onSpawn(child.pid!);
      } catch (e) {
        child.kill('SIGKILL');
        reject(e as Error);
      }
    });
    child.once('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code === 'ENOENT' ? QEMU_IMG_MISSING : `${what}: ${e.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      if (tiedProgramMissing(code, stderr)) return reject(new Error(QEMU_IMG_MISSING));
      const msg = qemuImgMessage(stderr, 2);
      reject(new Error(`${what}: ${msg || (signal ? `qemu-img was killed (${signal})` : `qemu-img exited with ${code}`)}`));
    });
  });
}

export const qemuImgLayerOps: LayerOps = {
  async backingOf(file) {
    return (await imageInfo(file, { format: 'qcow2' })).backingFile ?? undefined;
  },
  commit(top, into, hooks) {
    return runHelper(['commit', '-q', '-f', 'qcow2', '-b', into, top], `cannot commit ${top} into ${into}`, hooks);
  },
  rebase(file, newBacking, hooks) {
    const args = ['rebase', '-q', '-f', 'qcow2', '-b', newBacking ?? ''];
    if (newBacking !== undefined) args.push('-F', 'qcow2');
    args.push(file);
    return runHelper(args, `cannot rebase ${file} onto ${newBacking ?? 'no backing file'}`, hooks);
  },
  copy(src, dst) {
    fs.copyFileSync(src, dst, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
    fs.chmodSync(dst, PRIVATE_FILE_MODE);
  },
  checksum(file) {
    return checksumFile(file);
  },
};
