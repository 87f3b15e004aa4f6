// Native hashers for the hashing benches. They are not dependencies: their lock entries carry
// per-platform optional packages that `npm ci` refused as out of sync. To measure them, install by
// hand first: npm i --no-save @napi-rs/blake-hash @node-rs/xxhash
import { createRequire } from 'node:module';

export interface NativeHasher {
  update(b: Uint8Array): unknown;
  digest(enc: 'hex'): string;
}

function optional(name: string): Record<string, unknown> | undefined {
  try {
    return createRequire(__filename)(name) as Record<string, unknown>;
  } catch {
    console.log(`(${name} is not installed: its cases are skipped)`);
    return undefined;
  }
}

const blake = optional('@napi-rs/blake-hash') as { Blake3Hasher: new () => NativeHasher } | undefined;
const xxh = optional('@node-rs/xxhash') as { xxh3: { Xxh3: { withSeed(): NativeHasher } } } | undefined;

/** BLAKE3 (native), or undefined when @napi-rs/blake-hash is not installed. */
export const nativeBlake3 = blake ? () => new blake.Blake3Hasher() : undefined;
/** xxh3-64 (native), or undefined when @node-rs/xxhash is not installed. */
export const nativeXxh3 = xxh ? () => xxh.xxh3.Xxh3.withSeed() : undefined;
