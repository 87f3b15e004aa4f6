// Lint: typescript-eslint's recommended rules, the environment rules (no Node or Electron where
// the code runs in a page) and the layering rule (see DEVELOPERS.md, "Layering").
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { layersRule } from './eslint.layers.mjs';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

// The layers, lowest first. A module may import its own layer and the ones below it, never one
// above: shared/ < os, qmp, nbd, libvirt, qga < engine < host < cli, shell, main, preload, menu.
// "electron/" (the top) also takes any new folder there until it is given its place.
const STACK = [
  { name: 'shared', paths: ['shared/'], hint: 'shared/ is below every layer (the contract runs in the renderer too)' },
  { name: 'os/qmp/nbd', paths: ['electron/os/', 'electron/qmp/', 'electron/nbd/', 'electron/libvirt/', 'electron/qga/'] },
  { name: 'engine', paths: ['electron/engine/'] },
  { name: 'host', paths: ['electron/host/'] },
  { name: 'cli/shell/main', paths: ['electron/'] },
];
const LAYERS = [
  ...STACK.map((layer, i) => ({ ...layer, may: STACK.slice(0, i).map((l) => l.name) })),
  { name: 'renderer', paths: ['renderer/'], may: ['shared'], hint: 'the renderer reaches the engine only through the contract (shared/contract.ts)' },
];
// Integration tests (*.itest.ts) of every layer may also start the demo VM, a real QEMU (electron/engine/lab/).
const LAYERS_FOR_ITESTS = [
  ...LAYERS.map((layer) => ({ ...layer, may: [...layer.may, 'demo VM'] })),
  { name: 'demo VM', paths: ['electron/engine/lab/'], may: ['shared', 'os/qmp/nbd', 'engine'] },
];


const ROOT = dirname(fileURLToPath(import.meta.url));

export default tseslint.config(
  { ignores: ['out/**', 'dist/**', 'release/**', 'node_modules/**', 'test-results/**', 'playwright-report/**', 'e2e/artifacts/**', 'bench/results/**', 'test/fixtures/lint/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    files: ['**/*.cjs', '**/*.js', '**/*.mjs'],
    languageOptions: { globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly', console: 'readonly' } },
  },
  // shared/: the contract and domain types. Runs in the renderer too, so no Node, no Electron, no app code.
  {
    files: ['shared/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [...nodeBuiltins, 'electron'].map((name) => ({ name, message: 'shared/ must not import Node built-ins or electron: it runs in the renderer too.' })),
      }],
    },
  },
  // renderer/: reaches the engine only through the contract.
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.tsx'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [...nodeBuiltins, 'electron'].map((name) => ({ name, message: 'renderer/ must not import Node built-ins or electron: use the contract (shared/contract.ts).' })),
      }],
    },
  },
  // electron/: the engine is plain Node; only main.ts and preload.ts may touch Electron.
  {
    files: ['electron/**/*.ts'],
    ignores: ['electron/main.ts', 'electron/preload.ts', 'electron/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'electron', message: 'Only electron/main.ts and electron/preload.ts may import electron; the engine runs under the CLI and the web host too.' }],
      }],
    },
  },
  // The layers (see LAYERS above).
  { plugins: { tidemark: { rules: { layers: layersRule } } } },
  {
    files: ['shared/**/*.ts', 'electron/**/*.ts', 'renderer/**/*.ts', 'renderer/**/*.tsx'],
    rules: { 'tidemark/layers': ['error', { root: ROOT, layers: LAYERS }] },
  },
  {
    files: ['electron/**/*.itest.ts'],
    rules: { 'tidemark/layers': ['error', { root: ROOT, layers: LAYERS_FOR_ITESTS }] },
  },
);
