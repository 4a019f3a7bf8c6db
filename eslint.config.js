// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  {
    ignores: ['node_modules/', 'proto/gen/', 'services/gpu-worker/', '.edgeforge/', 'agent/dist/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // The one JavaScript file outside the config: the worker-thread bootstrap.
        projectService: { allowDefaultProject: ['bench/ts-worker.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    // Workflow code is replayed by Temporal and must stay deterministic: no Node built-ins,
    // no I/O, activities only as types.
    files: [
      'workflows/definitions/**/*.ts',
      'workflows/decisions/**/*.ts',
      'workflows/planner/**/*.ts',
    ],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'os', 'child_process', 'net', 'http', 'crypto'],
              message: 'Workflow code must be deterministic: no Node built-ins.',
            },
            {
              group: ['@nats-io/*', '@grpc/*', 'onnxruntime-node', 'prom-client', 'pino'],
              message: 'Workflow code must not do I/O; call an activity.',
            },
            {
              group: ['**/activities/*', '**/activities'],
              message: 'Import activities with `import type` only.',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', URL: 'readonly', console: 'readonly' },
    },
  },
);
