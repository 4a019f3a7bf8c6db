import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';

const WORKFLOWS_PATH = fileURLToPath(new URL('./index.ts', import.meta.url));
const HISTORIES = fileURLToPath(new URL('./histories', import.meta.url));

/**
 * Rollouts run for hours; a deploy of new workflow code must replay the histories of those in
 * flight exactly. These histories were recorded from real rollouts on the real stack
 * (EDGEFORGE_RECORD_HISTORIES=1 npx vitest run test/rollouts/rollout-workflow.test.ts -t distills);
 * a change that would make them diverge fails here, and needs workflow versioning (patched()).
 */
describe('recorded rollout histories replay on the current workflow code', async () => {
  const files = (await readdir(HISTORIES)).filter((f) => f.endsWith('.json')).sort();

  it('has histories to replay', () => {
    expect(files).toContain('rollout-four-devices.json');
    expect(files).toContain('class-two-waves.json');
  });

  it.each(files)(
    '%s',
    async (file) => {
      const history = historyFromJSON(JSON.parse(await readFile(`${HISTORIES}/${file}`, 'utf8')));
      await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, file);
    },
    60_000,
  );
});
