// Renderer build: renderer/index.html → out/renderer, relative asset paths (base './') so the same
// output loads from the web host and from Electron's app:// protocol.
import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));

/**
 * V8's explicit compile hint on the entry chunk: its functions are compiled when the script loads
 * (off the main thread while it streams) instead of lazily, one by one, the first time each runs.
 * Without it, the first render with a VM's data compiled ~300 functions on the main thread (~25 ms
 * at 1,000 checkpoints, bench/README.md "Timeline's own first render (phase 9)").
 */
function compileHints(): Plugin {
  return {
    name: 'tidemark-compile-hints',
    apply: 'build',
    generateBundle(_options, bundle) {
      for (const chunk of Object.values(bundle)) {
        if (chunk.type === 'chunk' && chunk.isEntry) chunk.code = `//# allFunctionsCalledOnLoad\n${chunk.code}`;
      }
    },
  };
}

export default defineConfig({
  root,
  base: './',
  plugins: [react(), compileHints()],
  build: {
    outDir: fileURLToPath(new URL('../out/renderer', import.meta.url)),
    emptyOutDir: true,
    // No inline <script>/<style>: the CSP allows only 'self'. Keep assets as files, not data: URLs.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
  },
});
