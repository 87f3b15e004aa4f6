// Checkpoint names and the file names derived from them. A checkpoint name is also the bitmap
// name in the qcow2 image, so it obeys qcow2's limits; file names derived from any string can
// never leave their directory and always fit NAME_MAX.

import { createHash } from 'node:crypto';

/** Prefix of Tidemark's temporary (non-persistent) bitmaps; reserved, so health can tell them apart. */
export const TEMP_BITMAP_PREFIX = 'tidemark-tmp-';

/** qcow2 stores bitmap names of at most 1023 bytes. */
export const MAX_CHECKPOINT_NAME_BYTES = 1023;

/** Longest encoded stem we keep readable; longer ones become a hash (NAME_MAX is 255 bytes). */
const MAX_READABLE_STEM = 200;

/** Throws an Error that says what is wrong with `name`, or returns it unchanged. */
export function validateCheckpointName(name: unknown): string {
  if (typeof name !== 'string') throw new Error(`checkpoint name must be a string, got ${typeof name}`);
  if (name === '') throw new Error('checkpoint name is empty');
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_CHECKPOINT_NAME_BYTES) {
    throw new Error(`checkpoint name is ${bytes} bytes long; qcow2 allows at most ${MAX_CHECKPOINT_NAME_BYTES} bytes`);
  }
  if (name.includes('/')) throw new Error(`checkpoint name ${JSON.stringify(name)} contains "/"`);
  // eslint-disable-next-line no-control-regex
  const ctrl = /[\u0000-\u001f\u007f-\u009f]/.exec(name);
  if (ctrl) {
    const code = ctrl[0].charCodeAt(0).toString(16).padStart(4, '0');
    throw new Error(`checkpoint name ${JSON.stringify(name)} contains a control character (U+${code})`);
  }
  if (name.startsWith('.')) throw new Error(`checkpoint name ${JSON.stringify(name)} starts with "."`);
  if (name.startsWith(TEMP_BITMAP_PREFIX)) {
    throw new Error(`checkpoint name ${JSON.stringify(name)} starts with "${TEMP_BITMAP_PREFIX}", which is reserved for temporary bitmaps`);
  }
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(name)) throw new Error(`checkpoint name ${JSON.stringify(name)} is not valid Unicode (lone surrogate)`);
  return name;
}

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
