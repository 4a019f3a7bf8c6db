import { generateManifestKeyPair, loadManifestKeyPair } from '../../common/manifest.js';
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createOrchestratorWorker } from '../../workflows/index.js';
import { smokeWorkflow } from '../../workflows/definitions/index.js';
import { REPO_ROOT } from '../../services/stack/index.js';
import { testNats, testTemporal, uniqueTaskQueue } from '../helpers/stack.js';

// Strict: a field added, renamed or dropped on the Python side fails here (the cross-language
// contract of common/temporal-api.ts).
const GpuEnvironmentSchema = z.strictObject({
  python_version: z.string(),
  torch_version: z.string(),
  onnxruntime_version: z.string(),
  cuda_available: z.boolean(),
  cuda_device_name: z.string().nullable(),
  training_device: z.enum(['cuda', 'cpu']),
  hostname: z.string(),
});

function lockedVersion(pkg: string): string {
  const lock = readFileSync(`${REPO_ROOT}/services/gpu-worker/requirements.lock`, 'utf8');
  const match = lock.match(new RegExp(`^${pkg}==(.+)$`, 'm'));
  if (!match?.[1]) throw new Error(`${pkg} is not pinned in requirements.lock`);
  return match[1].trim();
}

describe('cross-language smoke', () => {
  it('a TypeScript workflow reaches the Python gpu worker and NATS JetStream KV', async () => {
    const nats = await testNats();
    const { client, workerConnection } = await testTemporal();
    const taskQueue = uniqueTaskQueue('smoke');
    const worker = await createOrchestratorWorker({
      connection: workerConnection,
      nats,
      taskQueue,
      manifestKey: loadManifestKeyPair(generateManifestKeyPair().privateKeyPem),
    });
    const probeKey = `smoke-${randomUUID()}`;

    const result = await worker.runUntil(
      client.workflow.execute(smokeWorkflow, {
        taskQueue,
        workflowId: `smoke-${randomUUID()}`,
        args: [probeKey],
      }),
    );

    const gpu = GpuEnvironmentSchema.parse(result.gpu);
    // The worker runs the locked torch; local wheels may add a build tag (2.15.0+cpu).
    expect(gpu.torch_version.split('+')[0]).toBe(lockedVersion('torch'));
    expect(gpu.onnxruntime_version).toBe(lockedVersion('onnxruntime'));
    // Ground truth for "is there a GPU" that does not ask torch: the NVIDIA driver's device node.
    const gpuPresent = existsSync('/dev/nvidiactl');
    expect(gpu.cuda_available).toBe(gpuPresent);
    expect(gpu.training_device).toBe(gpuPresent ? 'cuda' : 'cpu');

    expect(result.kv.key).toBe(probeKey);
    expect(result.kv.read).toBe(result.kv.written);
    expect(result.kv.revision).toBeGreaterThan(0);
    // And the value really is in JetStream, not only in the activity's memory.
    const { Kvm } = await import('@nats-io/kv');
    const kv = await new Kvm(nats).open(result.kv.bucket);
    expect((await kv.get(probeKey))?.string()).toBe(result.kv.written);
  });
});
