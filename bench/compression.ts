import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GPU_WORKER_DIR, loadToolchain, REPO_ROOT } from '../services/stack/index.js';

/**
 * `--quick`: the whole pipeline at its smallest (a small_cnn teacher, one epoch each, few latency
 * runs), to show the benchmark works: a few minutes on an idle 2-core CPU, as each epoch still
 * sees all 54,000 training images. Its numbers mean nothing. Options given explicitly still win:
 * argparse keeps the last occurrence.
 */
const QUICK = [
  ...['--teacher', 'small_cnn'],
  ...['--teacher-epochs', '1', '--student-epochs', '1'],
  ...['--latency-runs', '20'],
];

const USAGE = `npm run bench -- compression [--quick] [--epochs N] [--out FILE] [python options]

  --quick      smallest run (small_cnn teacher, 1 epoch each, 20 latency runs): checks that the
               benchmark works; its numbers mean nothing
  --epochs N   teacher and student epochs alike (--teacher-epochs, --student-epochs set one)
  --out FILE   results JSON (default bench-results/compression[-quick]-<time>.json)

Every other option goes to python -m edgeforge_gpu.bench_compression unchanged:
`;

interface ModelResult {
  architecture: string;
  parameters: number;
  test_accuracy: number;
  size_bytes: number;
  training_seconds: number;
  latency_ms: Record<'1_thread' | 'all_threads', number>;
}

interface VariantResult {
  status: string;
  reason: string;
  test_accuracy?: number;
  size_ratio?: number;
  latency_ms?: Record<'1_thread' | 'all_threads', number>;
  speedup_vs_teacher_fp32?: Record<'1_thread' | 'all_threads', number>;
}

/** What bench_compression.py writes, as far as the summary reads it. */
interface CompressionResults {
  machine: Record<string, unknown>;
  models: Record<string, ModelResult>;
  variants: Record<string, VariantResult>;
  goals: Record<string, { met: boolean }>;
  seconds: number;
}

/**
 * The compression benchmark (services/gpu-worker/edgeforge_gpu/bench_compression.py) on
 * Fashion-MNIST, run in the gpu worker's venv with its progress on stderr; afterwards a summary
 * of the JSON it wrote under bench-results/.
 */
export async function runCompressionBenchmark(argv: string[]): Promise<void> {
  const { python, forwarded, out, help } = parseOptions(argv);
  if (help) {
    process.stdout.write(USAGE);
    await runPython(python, ['--help']);
    return;
  }
  await mkdir(join(REPO_ROOT, 'bench-results'), { recursive: true });
  process.stderr.write(`[compression] results go to ${out}\n`);
  await runPython(python, ['--out', out, ...forwarded]);
  const results = JSON.parse(await readFile(out, 'utf8')) as CompressionResults;
  report(results);
  console.log(`results written to ${out}`);
}

function parseOptions(argv: string[]): {
  python: string;
  forwarded: string[];
  out: string;
  help: boolean;
} {
  const forwarded: string[] = [];
  let quick = false;
  let help = false;
  let out: string | undefined;
  // Our few options are taken out; the rest is the Python benchmark's, which validates them.
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') ? splitInline(arg) : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value: ${USAGE.split('\n')[0]}`);
      return v;
    };
    if (flag === '--quick') quick = true;
    else if (flag === '--help' || flag === '-h') help = true;
    else if (flag === '--out') out = value();
    else if (flag === '--epochs') {
      const epochs = value();
      forwarded.push('--teacher-epochs', epochs, '--student-epochs', epochs);
    } else forwarded.push(arg);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    python: loadToolchain().python,
    forwarded: quick ? [...QUICK, ...forwarded] : forwarded,
    out:
      out ?? join(REPO_ROOT, 'bench-results', `compression${quick ? '-quick' : ''}-${stamp}.json`),
    help,
  };
}

function splitInline(arg: string): [string, string | undefined] {
  const eq = arg.indexOf('=');
  return eq < 0 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
}

/** The benchmark in the venv, its progress (stderr) and output passed straight through. */
function runPython(python: string, args: string[]): Promise<void> {
  const child = spawn(python, ['-m', 'edgeforge_gpu.bench_compression', ...args], {
    cwd: GPU_WORKER_DIR,
    env: { ...process.env, PYTHONPATH: GPU_WORKER_DIR, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', (err) =>
      reject(new Error(`cannot start ${python}: ${err.message}. Run \`npm run bootstrap\`.`)),
    );
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `the compression benchmark stopped (${signal ?? `exit ${code}`}); its log is above`,
          ),
        );
    });
  });
}

function report(results: CompressionResults): void {
  const pct = (x: number | undefined) => (x === undefined ? '-' : `${(x * 100).toFixed(2)}%`);
  const ms = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(3));
  const ratio = (x: number | undefined) => (x === undefined ? '-' : `${x.toFixed(2)}x`);
  console.log('\nmodels (latency: ONNX Runtime, batch 1, this machine; compare within this run)');
  console.table(
    Object.fromEntries(
      Object.entries(results.models).map(([name, m]) => [
        name,
        {
          architecture: m.architecture,
          parameters: m.parameters,
          'test accuracy': pct(m.test_accuracy),
          'size KiB': Math.round(m.size_bytes / 1024),
          'ms (1 thread)': ms(m.latency_ms['1_thread']),
          'ms (all threads)': ms(m.latency_ms.all_threads),
          'training s': Math.round(m.training_seconds),
        },
      ]),
    ),
  );
  console.log('variants of the distilled student');
  console.table(
    Object.fromEntries(
      Object.entries(results.variants).map(([name, v]) => [
        name,
        {
          status: v.status,
          'test accuracy': pct(v.test_accuracy),
          'size ratio': v.size_ratio === undefined ? '-' : v.size_ratio.toFixed(3),
          'ms (1 thread)': ms(v.latency_ms?.['1_thread']),
          'vs teacher (1 thread)': ratio(v.speedup_vs_teacher_fp32?.['1_thread']),
          'vs teacher (all threads)': ratio(v.speedup_vs_teacher_fp32?.all_threads),
        },
      ]),
    ),
  );
  for (const [name, goal] of Object.entries(results.goals)) {
    console.log(`goal ${goal.met ? 'met   ' : 'MISSED'} ${name}`);
  }
  console.log(`took ${Math.round(results.seconds)} s`);
}
