import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Two cores: unit files run two at a time; integration files one at a time (below).
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          // One file at a time: the chaos tests measure what a process does within a second or a sub-batch,
          // and a neighbour loading the two cores (a 200,000-recipient campaign, a browser) would blur it.
          fileParallelism: false,
        },
      },
    ],
  },
});
