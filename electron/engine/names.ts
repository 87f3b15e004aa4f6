// Checkpoint names and the file names derived from them. File names derived from any string can
// never leave their directory and always fit NAME_MAX.

import { createHash } from 'node:crypto';

// The checkpoint-name rules live in shared/names.ts, shared with the renderer's dialogs.
export { MAX_CHECKPOINT_NAME_BYTES, TEMP_BITMAP_PREFIX, validateCheckpointName } from '../../shared/names';

/** Longest encoded stem we keep readable; longer ones become a hash (NAME_MAX is 255 bytes). */
const MAX_READABLE_STEM = 200;

/**
 * A file-name stem for any string: letters, digits, "_", "-" and (not leading) "." stay as they
 * are; every other UTF-8 byte becomes %XX. Too long → "~" + sha256 (a readable stem never starts
 * with "~", since "~" is always encoded, so the two forms cannot collide).
 */
export function safeFileStem(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(byte);
    const plain = /[A-Za-z0-9_-]/.test(ch) || (ch === '.' && out !== '');
    out += plain ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out === '' || out.length > MAX_READABLE_STEM) return `~${createHash('sha256').update(s, 'utf8').digest('hex')}`;
  return out;
}

/** The metadata file name of a checkpoint (the JSON inside holds the real name). */
export function checkpointFileName(name: string): string {
  return `${safeFileStem(name)}.json`;
}

/** Directory name for a VM's metadata, derived from its id (uuid, name or endpoint). */
export function vmKey(vmId: string): string {
  return safeFileStem(vmId);
}
