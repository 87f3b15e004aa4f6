import { defineConfig } from 'vitest/config';

// Unit tests (*.test.ts) are fast and need nothing; integration tests (*.itest.ts) start real
// QEMU processes, so they run in forks with generous timeouts (a loaded 2-core machine made
// 60 s too short for CLI tests that start QEMU several times) and limited parallelism.
export default defineConfig({
  test: {
    include: ['{electron,shared,renderer,scripts,test}/**/*.{test,itest}.{ts,tsx}'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    environment: 'node',
  },
});
