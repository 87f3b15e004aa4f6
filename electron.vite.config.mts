// Builds the Electron main process and the preload (the renderer has its own Vite config,
// renderer/vite.config.mts; hence --ignoreConfigWarning in package.json). Both come out as
// CommonJS (package.json has no "type": "module"), in electron-vite's default places:
//   out/main/main.js       the main process, with the engine bundled in (no runtime dependencies)
//   out/preload/preload.js ONE file: a sandboxed preload can require only 'electron', never a chunk
import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';

// Plain objects rather than inline literals: tsconfig.check.json resolves modules the node10 way,
// which cannot see vite's own types, so inline build options would fail its excess-property check.
const main = {
  sourcemap: true,
  // Bundle saxes & co. into main.js, so the packaged app needs no node_modules at all.
  externalizeDeps: false,
  rollupOptions: {
    input: { main: resolve(__dirname, 'electron/main.ts') },
    // One file: dynamic imports (hash-wasm, loaded only to verify BLAKE3 layers) are inlined, not chunks.
    output: { format: 'cjs', entryFileNames: '[name].js', codeSplitting: false },
  },
};

const preload = {
  sourcemap: false,
  externalizeDeps: false,
  rollupOptions: {
    input: { preload: resolve(__dirname, 'electron/preload.ts') },
    output: { format: 'cjs', entryFileNames: '[name].js', codeSplitting: false },
  },
};

export default defineConfig({ main: { build: main }, preload: { build: preload } });
