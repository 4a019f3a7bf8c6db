import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { testManifest } from '../../test/helpers/manifests.js';
import { hotFeatureClassifier } from '../../test/helpers/onnx-models.js';
import { AgentMetrics } from '../metrics.js';
import { InferenceLatency } from './inference-latency.js';
import { InferenceServer } from './inference-server.js';
import { ModelSlot } from './model-slot.js';
import { ServedModel } from './served-model.js';

describe('InferenceServer', () => {
  let dir: string;
  let url: string;
  let server: InferenceServer;
  const slot = new ModelSlot();
  const metrics = new AgentMetrics('0');
  const latency = new InferenceLatency(metrics.inferenceLatency);

  async function served(version: number): Promise<ServedModel> {
    const model = hotFeatureClassifier({ scale: version });
    const manifest = testManifest({ model, version, hardwareClasses: ['c'] });
    const file = join(dir, `v${version}.onnx`);
    await writeFile(file, model);
    return ServedModel.load(file, { manifest, signature: 'c2ln' });
  }
  const post = (body: unknown) =>
    fetch(`${url}/v1/infer`, {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const hot = (feature: number) => Array.from({ length: 16 }, (_, i) => (i === feature ? 1 : 0));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-serve-'));
    server = new InferenceServer({
      slot,
      latency,
      requests: metrics.inferenceRequests,
      hardwareClass: () => 'x86_64-avx2-nofp16-cpu-8g',
      logger: createLogger('test', 'silent'),
    });
    url = await server.listen('127.0.0.1:0');
  });
  afterAll(async () => {
    slot.swap(undefined);
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 503 until a model is active', async () => {
    const response = await post({ inputs: hot(0) });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: string }).error).toMatch(/no model is active/);
    expect((await fetch(`${url}/v1/model`)).status).toBe(503);
  });

  it('runs flat and nested inputs, batched, and records the latency', async () => {
    slot.swap(await served(1));
    const response = await post({ inputs: [...hot(3), ...hot(5)] });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      outputs: { probs: { dims: number[]; data: number[] } };
      model: string;
      variant: string;
      version: number;
      latencyMs: number;
    };
    expect(body).toMatchObject({ model: 'hot-feature', variant: 'fp32', version: 1 });
    expect(body.latencyMs).toBeGreaterThan(0);
    expect(body.outputs.probs.dims).toEqual([2, 10]);
    const top = (row: number) => {
      const scores = body.outputs.probs.data.slice(row * 10, row * 10 + 10);
      return scores.indexOf(Math.max(...scores));
    };
    expect([top(0), top(1)]).toEqual([3, 5]);

    const nested = [
      [[hot(7).slice(0, 4), hot(7).slice(4, 8), hot(7).slice(8, 12), hot(7).slice(12)]],
    ];
    const byName = await post({ inputs: { x: nested } });
    expect(((await byName.json()) as typeof body).outputs.probs.dims).toEqual([1, 10]);
    expect(latency.pending()?.count).toBe(2);
  });

  it('says what is wrong with a bad request', async () => {
    slot.swap(await served(1));
    const cases: [unknown, RegExp][] = [
      ['{"inputs": [1,', /the body is not JSON/],
      [{}, /the body needs "inputs"/],
      [
        { inputs: hot(0).slice(1) },
        /input x has 15 values, which do not fill shape \[N, 1, 4, 4\] \(a multiple of 16/,
      ],
      [
        { inputs: [...hot(0).slice(1), 'a'] },
        /input x holds "a" at flat index 15; expected finite numbers/,
      ],
      [{ inputs: { y: hot(0) } }, /unknown input y; the model takes x/],
      [{ inputs: [[1, 2], [3]] }, /input x is not a rectangular nested array/],
      [
        { inputs: [[[[1, 2]]]] },
        /input x has shape \[1, 1, 1, 2\]; the model expects \[N, 1, 4, 4\]/,
      ],
    ];
    for (const [body, message] of cases) {
      const response = await post(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(message);
    }
    expect((await fetch(`${url}/v1/infer`)).status).toBe(405);
    expect((await fetch(`${url}/elsewhere`)).status).toBe(404);
    expect(await metrics.registry.metrics()).toMatch(
      /edgeforge_agent_inference_requests_total\{code="400"\} 7/,
    );
  });

  it('finishes a run in flight on a swapped-out model, then releases it', async () => {
    const [v1, v2] = [await served(1), await served(2)];
    slot.swap(v1);
    const feeds = { x: new Tensor('float32', Float32Array.from(hot(1)), [1, 1, 4, 4]) };
    const running = v1.run(feeds);
    slot.swap(v2); // retires v1 while its run is pending
    await expect(running).resolves.toHaveProperty('probs');
    await expect(v1.run(feeds)).rejects.toThrow();
    expect(await (await fetch(`${url}/v1/model`)).json()).toMatchObject({ version: 2 });
  });
});
