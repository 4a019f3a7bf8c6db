/**
 * `npm run bench -- repeatability`: how repeatable the agent's on-device benchmark is. Runs the
 * agent's own runBenchmark on one model several times in a row and reports, per run, the
 * per-inference coefficient of variation (how steady single inferences are) and, across runs, the
 * coefficient of variation of the reported p50 and p95 (how much the number a rollout decides on
 * moves between two benchmarks of the same model). Read it on an otherwise idle machine.
 *
 * Beside it, the machine's own timing jitter: the coefficient of variation of a fixed,
 * allocation-free JavaScript loop of a few tenths of a millisecond, timed the same way. No
 * benchmark can be steadier than that; on a virtual machine it is far from 0.
 *
 * Options: --model <file.onnx> with --shape <dims> (the input's shape, batch first; default: a
 * generated 4096 → 1000 Gemm classifier, about a millisecond), --threads (1), --repeats (5),
 * --runs (500), --seconds (2), --rounds (1).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runBenchmark, type BenchmarkResult } from '../agent/benchmark/run-benchmark.js';
import { loadSession } from '../agent/inference/load-session.js';
import { REPO_ROOT } from '../services/stack/index.js';
import { testManifest } from '../test/helpers/manifests.js';
import { hotFeatureClassifier } from '../test/helpers/onnx-models.js';

const GENERATED_SHAPE = [1, 1, 64, 64];

export async function runRepeatabilityBenchmark(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      shape: { type: 'string' },
      threads: { type: 'string', default: '1' },
      repeats: { type: 'string', default: '5' },
      runs: { type: 'string', default: '500' },
      seconds: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '1' },
    },
  });
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-repeatability-'));
  try {
    const shape = values.shape ? values.shape.split(',').map(Number) : GENERATED_SHAPE;
    const modelFile = values.model ?? join(dir, 'gemm-4096x1000.onnx');
    if (!values.model) {
      await writeFile(
        modelFile,
        hotFeatureClassifier({ sampleShape: shape.slice(1), classes: 1000 }),
      );
    }
    const session = await loadSession(modelFile);
    const inputName = session.inputNames[0]!;
    await session.release();
    const manifest = testManifest({
      model: await readFile(modelFile),
      hardwareClasses: ['any'],
      sampleShape: shape.slice(1),
    });
    manifest.inputs = [{ name: inputName, elemType: 'float32', shape }];

    const settings = {
      warmupRuns: 50,
      minRuns: Number(values.runs),
      minSeconds: Number(values.seconds),
      threads: Number(values.threads),
      rounds: Number(values.rounds),
    };
    const results: BenchmarkResult[] = [];
    for (let i = 0; i < Number(values.repeats); i++) {
      const result = await runBenchmark({
        modelFile,
        manifest,
        holdout: null,
        settings,
        deviceThreads: settings.threads,
      });
      results.push(result);
      const l = result.latency;
      process.stderr.write(
        `[repeatability] run ${i + 1}: p50 ${l.p50Ms.toFixed(3)} ms, p95 ${l.p95Ms.toFixed(3)} ms, ` +
          `per-inference CV ${(l.cv * 100).toFixed(1)}%, ${l.runs} runs\n`,
      );
    }
    const jitter = machineJitter();
    process.stderr.write(
      `[repeatability] the machine's own jitter: a fixed loop of p50 ${jitter.p50Ms.toFixed(3)} ms ` +
        `has a CV of ${(jitter.cv * 100).toFixed(1)}%\n`,
    );
    const across = (pick: (r: BenchmarkResult) => number) =>
      coefficientOfVariation(results.map(pick));
    const summary = {
      model: values.model ?? `generated Gemm ${shape.join('x')} → 1000`,
      settings,
      perInferenceCv: results.map((r) => round(r.latency.cv)),
      p50Ms: results.map((r) => round(r.latency.p50Ms)),
      p95Ms: results.map((r) => round(r.latency.p95Ms)),
      cvOfP50AcrossRuns: round(across((r) => r.latency.p50Ms)),
      cvOfP95AcrossRuns: round(across((r) => r.latency.p95Ms)),
      machineJitter: { loopP50Ms: round(jitter.p50Ms), cv: round(jitter.cv) },
    };
    console.log(JSON.stringify(summary, null, 2));
    const out = join(REPO_ROOT, 'bench-results');
    await mkdir(out, { recursive: true });
    const file = join(out, `repeatability-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(
      file,
      JSON.stringify(
        { machine: { cpus: cpus().length, node: process.version }, ...summary },
        null,
        2,
      ),
    );
    console.log(`results written to ${file}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Times a fixed loop with no allocation (so no garbage collection) 5,000 times. */
function machineJitter(): { p50Ms: number; cv: number } {
  const values = Float64Array.from({ length: 200_000 }, (_, i) => i);
  const times: number[] = [];
  let sink = 0;
  for (let r = 0; r < 6_000; r++) {
    const start = performance.now();
    for (let i = 0; i < values.length; i++) sink += values[i]! * 1.0000001;
    times.push(performance.now() - start);
  }
  if (sink < 0) throw new Error('unreachable: keeps the loop from being optimized away');
  const timed = times.slice(1_000).sort((a, b) => a - b); // after the JIT warmed up
  return { p50Ms: timed[Math.floor(timed.length / 2)]!, cv: coefficientOfVariation(timed) };
}

function coefficientOfVariation(values: number[]): number {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
  return mean > 0 ? Math.sqrt(variance) / mean : 0;
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;
