import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The fault suite (`npm run test:faults`, docs/reliability.md): the same workspace aliases as the
// main config. Each file starts its own servers and service processes and kills them; two files at
// a time keep a 2-core machine from timing out everything else while one scenario holds an outage open.
export default defineConfig({
  resolve: base.resolve,
  test: {
    root: base.test?.root,
    include: ['e2e/faults/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 240_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
