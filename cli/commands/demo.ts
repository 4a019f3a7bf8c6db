import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { Client, Connection } from '@temporalio/client';
import { TASK_QUEUES } from '../../common/names.js';
import type { SmokeResult } from '../../common/temporal-api.js';
import type { smokeWorkflow } from '../../workflows/workflows/index.js';
import { startStackForCli } from '../stack-session.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('start the embedded stack and run a workflow through every part of it')
    .option('--keep', 'leave the stack running afterwards (Ctrl-C stops it)')
    .option('--json', 'print the result as JSON')
    .action(async (options: { keep?: boolean; json?: boolean }) => {
      const stack = await startStackForCli({ ui: Boolean(options.keep) });
      const connection = await Connection.connect({ address: stack.endpoints.temporalAddress });
      try {
        process.stderr.write('[demo] running the smoke workflow across TypeScript and Python\n');
        const result = await new Client({ connection }).workflow.execute<typeof smokeWorkflow>(
          'smokeWorkflow',
          {
            taskQueue: TASK_QUEUES.orchestrator,
            workflowId: `demo-smoke-${randomUUID()}`,
            args: [`demo-${Date.now()}`],
          },
        );
        process.stdout.write(
          options.json ? `${JSON.stringify(result, null, 2)}\n` : render(result),
        );
      } finally {
        await connection.close();
      }
      if (options.keep) {
        process.stderr.write('[demo] --keep: the stack stays up; Ctrl-C stops it\n');
        await new Promise(() => {});
      }
      await stack.stop();
    });
}

function render(result: SmokeResult): string {
  const g = result.gpu;
  return [
    'edgeforge stack check',
    `  gpu worker       ${g.hostname}: torch ${g.torch_version}, onnxruntime ${g.onnxruntime_version}, Python ${g.python_version}`,
    `  training device  ${g.cuda_available ? `CUDA (${g.cuda_device_name})` : 'CPU (no CUDA GPU found; training runs on the CPU)'}`,
    `  NATS KV          ${result.kv.bucket}/${result.kv.key} revision ${result.kv.revision}: read back what was written`,
    '',
  ].join('\n');
}
