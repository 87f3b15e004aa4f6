import { defineConfig } from 'vitest/config';

// Unit tests (*.test.ts) are fast and need nothing; integration tests (*.itest.ts) start real
// QEMU processes, so they run in forks with generous timeouts and limited parallelism.
export default defineConfig({
  test: {
    include: ['{electron,shared,renderer,scripts,test}/**/*.{test,itest}.{ts,tsx}'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    environment: 'node',
  },
});
