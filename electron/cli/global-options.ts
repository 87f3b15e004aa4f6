// The options before the command (virsh's -c and friends). Its own small module because the thin
// client (host-client.ts) reads --state-dir from them too, and must load nothing else.

import { UsageError } from './args';

export interface GlobalOptions {
  connect?: string;
  /** A domain of the libvirt connection --connect names (name or UUID, as virsh's --domain). */
  domain?: string;
  stateDir?: string;
}

/** Global options come before the command, as virsh's -c. */
export function parseGlobal(argv: readonly string[]): { global: GlobalOptions; help: boolean; words: string[] } {
  const global: GlobalOptions = {};
  let help = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) break;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new UsageError(`option ${flag} needs a value`);
      return argv[++i]!;
    };
    if (flag === '-c' || flag === '--connect') global.connect = value();
    else if (flag === '--domain') global.domain = value();
    else if (flag === '--state-dir') global.stateDir = value();
    else if (flag === '-h' || flag === '--help') help = true;
    else throw new UsageError(`unknown option ${flag} (see: tidemark help)`);
  }
  return { global, help, words: argv.slice(i) };
}
