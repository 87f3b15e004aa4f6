// Loading a module on first use, so that code most commands never need (backups, pulls, NBD)
// costs nothing at start-up (the CLI's start time).

/**
 * Loads a module on first use: `required` (the caller's arrow calling require with the module's
 * relative path) wherever the caller runs as CommonJS (compiled, tsx, the Electron bundle, the
 * in-process host of the Playwright tests, whose TypeScript loader cannot import() a .ts file);
 * else `imported` (the caller's arrow calling import() with a variable holding the same path),
 * where there is no such require (vitest runs the sources as ESM). Both are written in the caller,
 * so both resolve from there; the import() specifier is a variable so that bundlers leave that
 * fallback alone rather than warn about a module imported both ways.
 */
export async function loadLater<T>(required: () => T, imported: () => Promise<unknown>): Promise<T> {
  try {
    return required();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' && !(e instanceof ReferenceError)) throw e;
    return (await imported()) as T;
  }
}
