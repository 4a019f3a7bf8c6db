import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{common,proto,services,workflows,agent,cli}/**/*.test.ts'],
          exclude: ['**/node_modules/**', 'services/gpu-worker/**'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          // One real nats-server + Temporal dev server + gpu worker for the whole run.
          globalSetup: ['test/helpers/global-setup.ts'],
          setupFiles: ['test/helpers/setup-file.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // The 2-core CI machine runs heavy integration files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
