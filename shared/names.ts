// The rules for a checkpoint name, in one place for every caller: the engine (and through it the
// CLI and the web host) refuses a bad name with these messages, and the renderer's dialogs check a
// name as it is typed with the same function, so a name a dialog accepts is never refused later.
// Pure: no Node, no DOM (it runs in the renderer too).
//
// A checkpoint name is also the bitmap name in the qcow2 image, so it obeys qcow2's limits. It is
// shown in trees, dialogs, terminals and file listings, so characters that are invisible or that
// reorder the text around them are refused: Unicode format characters (category Cf: the
// bidirectional controls U+202A–U+202E and U+2066–U+2069, U+200E/U+200F/U+061C, zero-width
// characters U+200B–U+200D and U+2060, the soft hyphen, U+FEFF) and the line and paragraph
// separators U+2028/U+2029. With them, "c1" and "c1" + U+200B, or a name that displays reversed
// ("Trojan Source", CVE-2021-42574), would look the same as another name in a delete or restore
// confirmation. Names from elsewhere (foreign bitmaps) are shown through escapeInvisible().

/** Prefix of Tidemark's temporary (non-persistent) bitmaps; reserved, so health can tell them apart. */
export const TEMP_BITMAP_PREFIX = 'tidemark-tmp-';

/** qcow2 stores bitmap names of at most 1023 bytes. */
export const MAX_CHECKPOINT_NAME_BYTES = 1023;

/** The rules in one line, for help texts and hints. */
export const CHECKPOINT_NAME_RULES =
  `at most ${MAX_CHECKPOINT_NAME_BYTES} bytes; no "/", control, invisible or text-direction characters, leading "." or "${TEMP_BITMAP_PREFIX}" prefix`;

/** Bytes of `s` in UTF-8 (a lone surrogate counts as U+FFFD, 3 bytes, as Node's Buffer does). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u; // eslint-disable-line no-control-regex
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const INVISIBLE = /[\p{Cf}\u2028\u2029]/u;
/** In u-mode a surrogate range matches only surrogates that are not part of a pair. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/** Everything escapeInvisible() writes as \uXXXX. */
const ESCAPED = /[\u0000-\u001f\u007f-\u009f\p{Cf}\u2028\u2029\uD800-\uDFFF]/gu; // eslint-disable-line no-control-regex

function codePoint(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).padStart(4, '0')}`;
}

/**
 * `s` with every control, format (invisible or bidirectional) and separator character, and every
 * lone surrogate, written as \uXXXX, so what is shown is what is stored.
 */
export function escapeInvisible(s: string): string {
  return s.replace(ESCAPED, (ch) => {
    const cp = ch.codePointAt(0)!;
    return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}

/** A name in double quotes for a message, with invisible characters escaped (JSON style). */
export function quoteName(name: string): string {
  return `"${escapeInvisible(JSON.stringify(name).slice(1, -1))}"`;
}

/** What is wrong with `name` as a checkpoint name, in one line; undefined when it is fine. */
export function checkpointNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `checkpoint name must be a string, got ${typeof name}`;
  if (name === '') return 'checkpoint name is empty';
  const bytes = utf8Length(name);
  if (bytes > MAX_CHECKPOINT_NAME_BYTES) return `checkpoint name is ${bytes} bytes long; qcow2 allows at most ${MAX_CHECKPOINT_NAME_BYTES} bytes`;
  const q = quoteName(name);
  if (name.includes('/')) return `checkpoint name ${q} contains "/"`;
  const ctrl = CONTROL.exec(name);
  if (ctrl) return `checkpoint name ${q} contains a control character (${codePoint(ctrl[0])})`;
  if (name.startsWith('.')) return `checkpoint name ${q} starts with "."`;
  if (name.startsWith(TEMP_BITMAP_PREFIX)) return `checkpoint name ${q} starts with "${TEMP_BITMAP_PREFIX}", which is reserved for temporary bitmaps`;
  if (LONE_SURROGATE.test(name)) return `checkpoint name ${q} is not valid Unicode (lone surrogate)`;
  const bidi = BIDI.exec(name);
  if (bidi) return `checkpoint name ${q} contains a text-direction control character (${codePoint(bidi[0])}), which makes it display differently from what it is`;
  const inv = INVISIBLE.exec(name);
  if (inv) return `checkpoint name ${q} contains an invisible character (${codePoint(inv[0])}), so it could look like another name`;
  return undefined;
}

/** Throws an Error that says what is wrong with `name`, or returns it unchanged. */
export function validateCheckpointName(name: unknown): string {
  const problem = checkpointNameProblem(name);
  if (problem !== undefined) throw new Error(problem);
  return name as string;
}
