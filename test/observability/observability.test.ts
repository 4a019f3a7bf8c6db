/**
 * Observability end to end: the Prometheus config, rules and rule tests pass promtool; every
 * /metrics endpoint of the running pieces passes `promtool check metrics`; a real Prometheus
 * scrapes them while agents serve inference, and every query of every Grafana dashboard returns
 * data, so no panel shows a metric the code does not export. And the control plane's edge
 * latency histogram is exactly the sum of what the agents measured.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Kvm } from '@nats-io/kv';
import { Worker } from '@temporalio/worker';
import { describe, expect, it, onTestFinished } from 'vitest';
import { INFERENCE_LATENCY_BUCKETS } from '../../agent/metrics.js';
import { EDGE_LATENCY_BUCKETS, histogramQuantile } from '../../common/latency-histogram.js';
import { KV_BUCKETS } from '../../common/names.js';
import { ROLLOUT_DEFAULTS, rolloutRecordKey, type RolloutStatus } from '../../common/rollout.js';
import { freePort, loadToolchain, ManagedProcess, REPO_ROOT } from '../../services/stack/index.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import { hotSample, infer, recordedBenchmark, TestOrchestrator } from '../helpers/distribution.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../helpers/onnx-models.js';
import { testNats, testStack, testTemporal, uniqueTaskQueue } from '../helpers/stack.js';
import {
  asPromQL,
  dashboardQueries,
  DASHBOARD_DIR,
  GRAFANA_DIR,
  loadDashboards,
  metricNames,
  panelsOf,
} from './dashboards.js';
import { gpuMetricsWorkflow } from './gpu-workflow.js';

const PROMETHEUS_DIR = join(REPO_ROOT, 'deploy/prometheus');
const JOBS = {
  controlPlane: 'edgeforge-control-plane',
  orchestrator: 'edgeforge-orchestrator',
  gpuWorker: 'edgeforge-gpu-worker',
  agents: 'edgeforge-agents',
};

/**
 * Queries whose data comes from rollout records. Until a real rollout runs in this test, the
 * test writes one record itself (SYNTHETIC_ROLLOUT, typed as the workflow's RolloutStatus), so
 * these are checked against what the collector makes of that record, not of a real rollout.
 */
const PENDING_ROLLOUT_PANELS = new Set([
  'edgeforge-rollouts/Rolled-back waves by class',
  'edgeforge-rollouts/Progress by rollout and class',
  'edgeforge-rollouts/Devices by state',
  'edgeforge-rollouts/Running rollouts: time since the last update',
  'edgeforge-rollouts/$rollout_id',
  'edgeforge-edge-latency/annotation Rollout started',
]);

interface JsYaml {
  load(input: string): unknown;
  dump(value: unknown): string;
}
// js-yaml is installed (ESLint depends on it) but ships no type declarations: typed here.
const yaml = createRequire(import.meta.url)('js-yaml') as JsYaml;

const promtool = () => loadToolchain().promtool;

function run(command: string, args: string[], input?: string) {
  const result = spawnSync(command, args, { encoding: 'utf8', input, cwd: REPO_ROOT });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function filesIn(dir: string, pattern: RegExp): string[] {
  return readdirSync(dir)
    .filter((f) => pattern.test(f))
    .map((f) => join(dir, f));
}

interface PrometheusConfig {
  global?: Record<string, unknown>;
  rule_files?: string[];
  scrape_configs: {
    job_name: string;
    static_configs?: unknown;
    file_sd_configs?: { files: string[] }[];
    kubernetes_sd_configs?: unknown;
  }[];
}

const readConfig = (file: string) => yaml.load(readFileSync(file, 'utf8')) as PrometheusConfig;

describe('Prometheus and Grafana configuration', () => {
  it('promtool accepts the scrape configs, the rules and the rules unit tests', async () => {
    const config = join(PROMETHEUS_DIR, 'prometheus.yml');
    let result = run(promtool(), ['check', 'config', config]);
    expect(result.status, result.output).toBe(0);
    const rules = filesIn(join(PROMETHEUS_DIR, 'rules'), /\.ya?ml$/);
    expect(rules.length).toBeGreaterThan(0);
    result = run(promtool(), ['check', 'rules', ...rules]);
    expect(result.status, result.output).toBe(0);
    const tests = filesIn(join(PROMETHEUS_DIR, 'tests'), /\.ya?ml$/);
    expect(tests.length).toBeGreaterThan(0);
    result = run(promtool(), ['test', 'rules', ...tests]);
    expect(result.status, result.output).toBe(0);
    expect(result.output).not.toMatch(/FAILED/);

    // The Kubernetes variant: Debian's Prometheus is built without Kubernetes discovery, so the
    // pod discovery is checked as a static config; the relabelling and the rules as they are.
    const k8s = readConfig(join(PROMETHEUS_DIR, 'kubernetes/prometheus.yml'));
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-promcfg-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    expect(k8s.scrape_configs.every((s) => s.kubernetes_sd_configs !== undefined)).toBe(true);
    for (const scrape of k8s.scrape_configs) {
      delete scrape.kubernetes_sd_configs;
      scrape.static_configs = [{ targets: ['10.0.0.1:9464'] }];
    }
    expect(k8s.rule_files).toEqual(['/etc/prometheus/edgeforge/edgeforge.yml']);
    k8s.rule_files = [join(PROMETHEUS_DIR, 'rules/edgeforge.yml')];
    await writeFile(join(dir, 'prometheus.yml'), yaml.dump(k8s));
    result = run(promtool(), ['check', 'config', join(dir, 'prometheus.yml')]);
    expect(result.status, result.output).toBe(0);
  });

  it('has dashboards that query the provisioned Prometheus, with unique ids, loaded by the providers', async () => {
    const datasources = yaml.load(
      await readFile(join(GRAFANA_DIR, 'provisioning/datasources/prometheus.yml'), 'utf8'),
    ) as { datasources: { uid: string; type: string }[] };
    const uid = datasources.datasources[0]!.uid;
    const k8sDatasource = yaml.load(
      await readFile(join(GRAFANA_DIR, 'kubernetes/datasource.yml'), 'utf8'),
    ) as { datasources: { uid: string }[] };
    expect(k8sDatasource.datasources[0]!.uid).toBe(uid);
    const kustomization = await readFile(join(GRAFANA_DIR, 'kustomization.yaml'), 'utf8');

    const dashboards = loadDashboards();
    expect(dashboards.map((d) => d.file).sort()).toEqual(
      ['compression.json', 'edge-latency.json', 'fleet-health.json', 'rollouts.json'].sort(),
    );
    const problems: string[] = [];
    const uids = new Set<string>();
    for (const { file, dashboard } of dashboards) {
      if (uids.has(dashboard.uid)) problems.push(`${file}: uid ${dashboard.uid} used twice`);
      uids.add(dashboard.uid);
      if (!kustomization.includes(`dashboards/${file}`))
        problems.push(`${file} is not in deploy/grafana/kustomization.yaml`);
      const ids = new Set<number>();
      for (const panel of panelsOf(dashboard)) {
        if (ids.has(panel.id)) problems.push(`${file}: panel id ${panel.id} used twice`);
        ids.add(panel.id);
        if (panel.type === 'row') continue;
        if (panel.datasource?.uid !== uid)
          problems.push(`${file}: "${panel.title}" does not use datasource ${uid}`);
        if (!panel.targets?.length || panel.targets.some((t) => !t.expr))
          problems.push(`${file}: "${panel.title}" has a target without a query`);
      }
    }
    for (const query of dashboardQueries()) {
      // A constant makes any query "return data": not allowed, or the live check proves nothing.
      if (/\bvector\s*\(|\babsent\s*\(/.test(query.expr))
        problems.push(`${query.id}: a query padded with vector()/absent(): ${query.expr}`);
    }
    expect(problems).toEqual([]);
    expect(DASHBOARD_DIR).toContain('deploy/grafana/dashboards');
  });
});

// ---------------------------------------------------------------------------------------------
// The live stack

const HOLDOUT = npzBytes(matchingHoldout({ samples: 30 }), { deflate: true });
const BENCHMARK = { warmupRuns: 2, minRuns: 20, minSeconds: 0.05, threads: 1 };

/** A rollout record as the rollout workflow writes it, for the rollout panels (see above). */
function syntheticRollout(rolloutId: string, hardwareClass: string): RolloutStatus {
  const now = Date.now();
  return {
    rolloutId,
    modelId: `${rolloutId}-small_cnn`,
    phase: 'rolling_out',
    detail: 'waves',
    startedAt: new Date(now - 600_000).toISOString(),
    updatedAt: new Date(now).toISOString(),
    finishedAt: null,
    spec: {
      rolloutId,
      dataset: { source: 'digits' },
      source: { kind: 'distill', teacher: {}, student: { architecture: 'small_cnn' } },
      ...ROLLOUT_DEFAULTS,
    },
    teacher: null,
    student: null,
    labels: 'dataset',
    classes: [
      {
        hardwareClass,
        phase: 'rolling_out',
        devicesTotal: 3,
        devicesDone: 1,
        devicesFailed: 0,
        unresponsive: [],
        canaries: ['d-1'],
        candidates: [],
        chosen: null,
        waves: [
          {
            index: 0,
            devices: ['d-1'],
            state: 'passed',
            activated: 1,
            failed: 0,
            unresponsive: 0,
            servingP95Ms: 1.2,
          },
        ],
        reason: '',
        updatedAt: new Date(now).toISOString(),
      },
    ],
    skippedClasses: [],
    error: null,
  };
}

/** Prometheus's instant query API; resolves with the result or throws what it said. */
async function query(prometheus: string, promql: string) {
  const response = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as {
    status: string;
    error?: string;
    data?: {
      resultType: 'vector' | 'matrix' | 'scalar' | 'string';
      result: { metric: Record<string, string>; value?: [number, string] }[] | [number, string];
    };
  };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
  return body.data!;
}

/** How many samples of a result are finite numbers (NaN is what an empty histogram gives). */
function finiteSamples(data: Awaited<ReturnType<typeof query>>): number {
  if (data.resultType === 'scalar') return Number.isFinite(Number(data.result[1])) ? 1 : 0;
  return (data.result as { value?: [number, string] }[]).filter((r) =>
    Number.isFinite(Number(r.value?.[1])),
  ).length;
}

/** Series of a text exposition: name{labels} → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Cumulative bucket counts (then +Inf) of one histogram series of an exposition, by le. */
function bucketsOf(text: string, name: string, match: Record<string, string>): number[] {
  const wanted = Object.entries(match);
  const found = [...samples(text)].filter(
    ([series]) =>
      series.startsWith(`${name}_bucket{`) &&
      wanted.every(([k, v]) => series.includes(`${k}="${v}"`)),
  );
  const le = (series: string) => {
    const value = /le="([^"]+)"/.exec(series)![1]!;
    return value === '+Inf' ? Infinity : Number(value);
  };
  return found.sort((a, b) => le(a[0]) - le(b[0])).map(([, v]) => v);
}

async function startPrometheus(targets: Record<string, string[]>) {
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-prometheus-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  // The repository's config, with this run's targets and a 1 s scrape interval.
  const config = readConfig(join(PROMETHEUS_DIR, 'prometheus.yml'));
  config.global = { scrape_interval: '1s', evaluation_interval: '1s' };
  config.rule_files = (config.rule_files ?? []).map((f) => join(PROMETHEUS_DIR, f));
  expect(config.scrape_configs.map((s) => s.job_name).sort()).toEqual(Object.values(JOBS).sort());
  for (const scrape of config.scrape_configs) {
    const list = targets[scrape.job_name]!;
    if (scrape.file_sd_configs) {
      // The agents come from a file_sd file, as in the repository's config.
      await writeFile(join(dir, 'agents.json'), JSON.stringify([{ targets: list }]));
      scrape.file_sd_configs = [{ files: [join(dir, 'agents.json')] }];
    } else {
      scrape.static_configs = [{ targets: list }];
    }
  }
  await writeFile(join(dir, 'prometheus.yml'), yaml.dump(config));
  const port = await freePort();
  const prometheus = new ManagedProcess({
    name: 'prometheus',
    command: loadToolchain().prometheus,
    args: [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    logFile: join(dir, 'prometheus.log'),
  });
  onTestFinished(() => prometheus.stop());
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => {
    expect(prometheus.isRunning, prometheus.recentOutput()).toBe(true);
    expect((await fetch(`${url}/-/ready`)).status).toBe(200);
  }, 30_000);
  return { url, startedAt: Date.now() };
}

/** The orchestrator worker as its own process (workflows/main.ts), serving its /metrics. */
async function startOrchestratorProcess(manifestKeyFile: string): Promise<string> {
  const stack = testStack();
  const proc = new ManagedProcess({
    name: 'orchestrator',
    command: process.execPath,
    args: ['--import', 'tsx', join(REPO_ROOT, 'workflows/main.ts')],
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      EDGEFORGE_TEMPORAL_ADDRESS: stack.temporalAddress,
      EDGEFORGE_NATS_URL: stack.natsUrl,
      EDGEFORGE_MANIFEST_KEY_FILE: manifestKeyFile,
      EDGEFORGE_ORCHESTRATOR_METRICS_LISTEN: '127.0.0.1:0',
      EDGEFORGE_LOG_LEVEL: 'info',
    },
    logFile: join(stack.logDir, `orchestrator-observability-${process.pid}.log`),
  });
  onTestFinished(() => proc.stop());
  const [, url] = await proc.waitForLine(
    /"metrics":"(http:\/\/[^"]+)".*orchestrator worker ready/,
    180_000,
  );
  return url!;
}

/** The gpu worker that global-setup started logs where it serves /metrics. */
async function gpuWorkerMetricsUrl(): Promise<string> {
  const log = await readFile(join(testStack().logDir, 'gpu-worker.log'), 'utf8');
  const urls = [...log.matchAll(/gpu worker metrics on (http:\/\/\S+)/g)].map((m) => m[1]!);
  expect(urls.length, 'the gpu worker logs its metrics address').toBeGreaterThan(0);
  return urls.at(-1)!;
}

/** Runs describe_environment and a two-epoch teacher on the real gpu worker. */
async function runGpuActivities(rolloutId: string): Promise<number> {
  const { client, workerConnection } = await testTemporal();
  const taskQueue = uniqueTaskQueue('observability');
  const worker = await Worker.create({
    connection: workerConnection,
    taskQueue,
    workflowsPath: fileURLToPath(new URL('./gpu-workflow.ts', import.meta.url)),
  });
  return worker.runUntil(
    client.workflow.execute(gpuMetricsWorkflow, {
      taskQueue,
      workflowId: `observability-${rolloutId}`,
      args: [
        {
          rollout_id: rolloutId,
          dataset: { source: 'digits' },
          teacher: {
            source: 'train',
            architecture: 'small_cnn',
            training: { epochs: 2, batch_size: 64 },
          },
        },
      ],
    }),
  );
}

describe('metrics of the running stack', () => {
  it('pass promtool check metrics, and feed every dashboard query in a real Prometheus', async () => {
    // The agents' buckets are the control plane's: heartbeats add bucket for bucket.
    expect(INFERENCE_LATENCY_BUCKETS).toEqual(EDGE_LATENCY_BUCKETS);
    const nats = await testNats('observability');
    await resetFleetState(nats);
    const runId = `obs-${randomUUID().slice(0, 8)}`;

    const cp = await startTestControlPlane();
    const agents = await Promise.all(
      ['raspberry-pi-4', 'raspberry-pi-5'].map((cpuinfo) =>
        startTestAgent(cp.address, { cpuinfo }),
      ),
    );
    const classes = agents.map((a) => a.hardwareClass!);
    expect(new Set(classes).size).toBe(2);

    const rollouts = await new Kvm(nats).create(KV_BUCKETS.rollouts, { history: 1 });
    await rollouts.put(
      rolloutRecordKey(runId),
      JSON.stringify(syntheticRollout(runId, classes[0]!)),
    );
    onTestFinished(async () => {
      await rollouts.delete(rolloutRecordKey(runId));
    });

    const [orchestratorUrl, gpuUrl] = await Promise.all([
      startOrchestratorProcess(join(cp.dataDir, 'manifest-signing.pem')),
      gpuWorkerMetricsUrl(),
    ]);
    const endpoints = {
      'control plane': cp.metricsUrl,
      ...Object.fromEntries(agents.map((a, i) => [`agent ${classes[i]}`, a.metricsUrl!])),
      'gpu worker': gpuUrl,
      orchestrator: orchestratorUrl,
    };
    const hostPort = (url: string) => new URL(url).host;
    const prometheus = await startPrometheus({
      [JOBS.controlPlane]: [hostPort(cp.metricsUrl)],
      [JOBS.orchestrator]: [hostPort(orchestratorUrl)],
      [JOBS.gpuWorker]: [hostPort(gpuUrl)],
      [JOBS.agents]: agents.map((a) => hostPort(a.metricsUrl!)),
    });
    await eventually(async () => {
      const up = await query(prometheus.url, 'up');
      const rows = up.result as { metric: Record<string, string>; value: [number, string] }[];
      expect(rows.map((r) => `${r.metric.job} ${r.value[1]}`).sort()).toEqual(
        [
          `${JOBS.agents} 1`,
          `${JOBS.agents} 1`,
          `${JOBS.controlPlane} 1`,
          `${JOBS.gpuWorker} 1`,
          `${JOBS.orchestrator} 1`,
        ].sort(),
      );
    }, 30_000);

    // Work for every panel: training on the gpu worker; benchmarks, activations and serving on
    // the agents (fp32 on one class, int8 on the other).
    const orchestrator = await TestOrchestrator.open(nats, cp.dataDir);
    const publish = (variant: string, scale: number) =>
      orchestrator.publish({
        model: hotFeatureClassifier({ scale }),
        holdout: HOLDOUT,
        variant,
        rolloutId: runId,
        hardwareClasses: classes,
      });
    const agentWork = (async () => {
      const fp32 = await publish('fp32', 1);
      const int8 = await publish('int8_dynamic', 3);
      for (const agent of agents) {
        await orchestrator.benchmark(agent.deviceId!, runId, [fp32, int8], BENCHMARK);
      }
      for (const agent of agents) {
        for (const variant of ['fp32', 'int8_dynamic']) {
          await eventually(
            async () =>
              expect(await recordedBenchmark(nats, runId, variant, agent.deviceId!)).toBeDefined(),
            120_000,
          );
        }
      }
      await orchestrator.run(agents[0]!.deviceId!, runId, int8);
      await orchestrator.run(agents[1]!.deviceId!, runId, fp32);
      for (const agent of agents) {
        await eventually(async () => {
          const { status } = await infer(agent, hotSample(3));
          expect(status).toBe(200);
        }, 60_000);
      }
    })();
    const [epochs] = await Promise.all([runGpuActivities(runId), agentWork]);
    expect(epochs).toBe(2);

    // Serve requests until the checks are done, at least 50 per agent before they start.
    let serving = true;
    const served = agents.map(() => 0);
    const load = Promise.all(
      agents.map(async (agent, i) => {
        while (serving) {
          expect((await infer(agent, hotSample(5))).status).toBe(200);
          served[i]! += 1;
          await new Promise((r) => setTimeout(r, 10));
        }
      }),
    );
    try {
      await eventually(() => expect(Math.min(...served)).toBeGreaterThanOrEqual(50), 60_000);
      // promtool check metrics on every endpoint, now that every series exists.
      for (const [name, url] of Object.entries(endpoints)) {
        const body = await (await fetch(url)).text();
        const result = run(promtool(), ['check', 'metrics'], body);
        expect(result.status, `${name} (${url}):\n${result.output}`).toBe(0);
        expect(result.output.trim(), `${name} (${url})`).toBe('');
      }

      // Every dashboard query, as Grafana would send it, returns data.
      const queries = dashboardQueries();
      expect(queries.length).toBeGreaterThan(30);
      await eventually(async () => {
        const names = new Set(
          (
            (await (await fetch(`${prometheus.url}/api/v1/label/__name__/values`)).json()) as {
              data: string[];
            }
          ).data,
        );
        const problems: string[] = [];
        const range = (Date.now() - prometheus.startedAt) / 1000;
        for (const q of queries) {
          const missing = metricNames(q.expr).filter((n) => !names.has(n));
          if (missing.length > 0) {
            problems.push(`${q.id}: Prometheus has no ${missing.join(', ')}`);
            continue;
          }
          // Annotations mark events (rollbacks, activations in the last interval) that may
          // rightly be absent now; their metrics exist, checked above.
          if (q.kind === 'annotation' && !PENDING_ROLLOUT_PANELS.has(q.id)) continue;
          const promql = asPromQL(q.expr, range);
          const found = finiteSamples(await query(prometheus.url, promql));
          if (found === 0) problems.push(`${q.id}: no data for ${promql}`);
        }
        expect(problems).toEqual([]);
      }, 90_000);
      console.log(
        `[observability] ${queries.length} dashboard queries returned data; fed by a synthetic ` +
          `rollout record until a real rollout runs here (PENDING_ROLLOUT_PANELS): ` +
          [...PENDING_ROLLOUT_PANELS].join('; '),
      );
    } finally {
      serving = false;
      await load;
    }

    // Once the agents' last latencies arrived, the control plane's histogram is exactly the sum
    // of theirs, bucket for bucket, and each device's serving histogram matches its agent.
    const edge = 'edgeforge_edge_inference_latency_seconds';
    await eventually(async () => {
      const cpText = await (await fetch(cp.metricsUrl)).text();
      for (const [i, agent] of agents.entries()) {
        const agentText = await (await fetch(agent.metricsUrl!)).text();
        const { activeModel } = cp.registry.get(agent.deviceId!)!;
        const labels = {
          hardware_class: classes[i]!,
          model: activeModel!.modelId,
          variant: activeModel!.variant,
        };
        const measured = bucketsOf(agentText, 'edgeforge_agent_inference_latency_seconds', labels);
        expect(measured.at(-1)).toBeGreaterThanOrEqual(50);
        expect(bucketsOf(cpText, edge, labels)).toEqual(measured);
        const histogram = cp.registry.get(agent.deviceId!)!.serving!;
        expect(histogram.modelSha256).toBe(activeModel!.sha256);
        let cumulative = 0;
        expect(histogram.bucketCounts.map((c) => (cumulative += c))).toEqual(measured);
      }
    }, 30_000);

    // histogramQuantile over a device's serving histogram is PromQL's histogram_quantile.
    const histogram = cp.registry.get(agents[0]!.deviceId!)!.serving!;
    await eventually(async () => {
      const data = await query(
        prometheus.url,
        `histogram_quantile(0.95, sum by (le) (${edge}_bucket{hardware_class="${classes[0]}"}))`,
      );
      const promValue = Number((data.result as { value: [number, string] }[])[0]!.value[1]);
      const ours = histogramQuantile(histogram.bucketUpperBounds, histogram.bucketCounts, 0.95);
      expect(ours).toBeGreaterThan(0);
      expect(promValue).toBeCloseTo(ours, 9);
    }, 15_000);
  }, 600_000);
});
