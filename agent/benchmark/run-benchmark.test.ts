import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testManifest } from '../../test/helpers/manifests.js';
import { npzBytes } from '../../test/helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../../test/helpers/onnx-models.js';
import { loadHoldout } from '../holdout/holdout.js';
import { benchmarkInRounds, runBenchmark } from './run-benchmark.js';

describe('runBenchmark', () => {
  let dir: string;
  const model = hotFeatureClassifier();
  const manifest = testManifest({ model, hardwareClasses: ['any'] });
  const settings = { warmupRuns: 2, minRuns: 30, minSeconds: 0.05, threads: 1 };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-bench-'));
    await writeFile(join(dir, 'model.onnx'), model);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('times at least minRuns runs for at least minSeconds and scores the holdout', async () => {
    const holdoutFile = join(dir, 'holdout.npz');
    const arrays = matchingHoldout({ samples: 12 });
    // One reference answer differs from the label: agreement and accuracy part ways.
    const reference = new BigInt64Array(arrays.y!.data as BigInt64Array);
    reference[0] = 9n;
    await writeFile(
      holdoutFile,
      npzBytes({ ...arrays, reference: { data: reference, shape: [12] } }),
    );
    const result = await runBenchmark({
      modelFile: join(dir, 'model.onnx'),
      manifest,
      holdout: await loadHoldout(holdoutFile),
      settings,
      deviceThreads: 4,
    });
    expect(result.latency.runs).toBeGreaterThanOrEqual(30);
    // Throughput is runs over the timed wall time, which lasted at least minSeconds.
    expect(result.throughputPerSecond).toBeLessThanOrEqual(result.latency.runs / 0.05);
    expect(result.latency.p50Ms).toBeGreaterThan(0);
    expect(result.latency.p50Ms).toBeLessThanOrEqual(result.latency.p99Ms);
    expect(result.sessionLoadMs).toBeGreaterThan(0);
    expect(result.threads).toBe(1);
    expect(result.holdout).toEqual({
      samples: 12,
      accuracy: 1,
      top1Agreement: 11 / 12,
      agreementBasis: 'reference',
      nonFinite: 0,
    });
  });

  it('feeds random inputs of the manifest shape when there is no holdout', async () => {
    const result = await runBenchmark({
      modelFile: join(dir, 'model.onnx'),
      manifest,
      holdout: null,
      settings,
      deviceThreads: 4,
    });
    expect(result.holdout).toBeNull();
    expect(result.latency.runs).toBeGreaterThanOrEqual(30);
  });

  it('runs on all the device’s threads when settings.threads is 0, and never on more', async () => {
    const bench = (threads: number, deviceThreads: number) =>
      runBenchmark({
        modelFile: join(dir, 'model.onnx'),
        manifest,
        holdout: null,
        settings: { ...settings, minRuns: 3, minSeconds: 0, threads },
        deviceThreads,
      });
    expect((await bench(0, 3)).threads).toBe(3);
    // A one-thread board benchmarks on one thread whatever the rollout asks for.
    expect((await bench(0, 1)).threads).toBe(1);
    expect((await bench(8, 1)).threads).toBe(1);
    expect((await bench(2, 4)).threads).toBe(2);
  });

  it('flips the share of predictions a simulated fault asks for when it scores the holdout', async () => {
    const holdoutFile = join(dir, 'holdout-20.npz');
    await writeFile(holdoutFile, npzBytes(matchingHoldout({ samples: 20 })));
    const result = await runBenchmark({
      modelFile: join(dir, 'model.onnx'),
      manifest,
      holdout: await loadHoldout(holdoutFile),
      settings,
      deviceThreads: 1,
      flipShare: 0.25,
    });
    // 5 of 20 right answers moved to the next class: wrong, and unlike the fp32 reference.
    expect(result.holdout).toMatchObject({ samples: 20, accuracy: 0.75, top1Agreement: 0.75 });
  });

  it('stops when aborted', async () => {
    const abort = new AbortController();
    abort.abort(new Error('superseded'));
    await expect(
      runBenchmark({
        modelFile: join(dir, 'model.onnx'),
        manifest,
        holdout: null,
        settings,
        deviceThreads: 1,
        signal: abort.signal,
      }),
    ).rejects.toThrow(/superseded/);
  });

  it('interleaves rounds across the models, rotating the order, and splits the runs among them', async () => {
    const other = join(dir, 'other.onnx');
    await writeFile(other, model);
    const order: string[] = [];
    let inside = 0;
    const results = await benchmarkInRounds(
      [
        { modelFile: join(dir, 'model.onnx'), manifest, holdout: null },
        { modelFile: other, manifest, holdout: null },
      ],
      {
        settings: { ...settings, minRuns: 30, minSeconds: 0, rounds: 3 },
        deviceThreads: 1,
        exclusive: async (measure) => {
          // Rounds never overlap: the wrapper (the shared-host lock) sees one at a time.
          expect(inside).toBe(0);
          inside++;
          try {
            return await measure();
          } finally {
            inside--;
          }
        },
        onRound: (target, round) => order.push(`${round}:${target}`),
      },
    );
    expect(order).toEqual(['1:0', '1:1', '2:1', '2:0', '3:0', '3:1']);
    for (const result of results) {
      if (result instanceof Error) throw result;
      expect(result.latency.roundP95Ms).toHaveLength(3);
      expect(result.latency.runs).toBeGreaterThanOrEqual(30);
      expect(result.latency.runs).toBeLessThan(60);
    }
  });

  it('gives a model that cannot be loaded its error and measures the others', async () => {
    const broken = join(dir, 'broken.onnx');
    await writeFile(broken, Buffer.from('not an onnx model'));
    const [bad, good] = await benchmarkInRounds(
      [
        { modelFile: broken, manifest, holdout: null },
        { modelFile: join(dir, 'model.onnx'), manifest, holdout: null },
      ],
      { settings: { ...settings, rounds: 2 }, deviceThreads: 1 },
    );
    expect(bad).toBeInstanceOf(Error);
    expect(good).not.toBeInstanceOf(Error);
  });
});
