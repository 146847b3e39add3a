import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most tests wait on Redis, timers and other processes rather than the CPU: three files at a time on two cores.
    maxWorkers: 3,
  },
});
