// Lint: typescript-eslint's recommended rules plus the layering rule that keeps the
// three environments honest (see DEVELOPERS.md, "Layering").
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

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
        patterns: [{ group: ['**/electron/**', '**/renderer/**', '../electron', '../renderer'], message: 'shared/ must not import electron/ or renderer/ code.' }],
      }],
    },
  },
  // renderer/: reaches the engine only through the contract.
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.tsx'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [...nodeBuiltins, 'electron'].map((name) => ({ name, message: 'renderer/ must not import Node built-ins or electron: use the contract (shared/contract.ts).' })),
        patterns: [{ group: ['**/electron/**', '../electron', '../../electron'], message: 'renderer/ must not import electron/ code: use the contract (shared/contract.ts).' }],
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
        patterns: [{ group: ['**/renderer/**'], message: 'electron/ must not import renderer/ code.' }],
      }],
    },
  },
);
