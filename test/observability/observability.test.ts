/**
 * Observability end to end: the Prometheus config, rules and rule tests pass promtool; every
 * /metrics endpoint of the running pieces passes `promtool check metrics`; a real Prometheus
 * scrapes them while real rollouts run (one rolled back, one still baking) and agents serve the
 * models those rollouts activated, and every query and annotation of every Grafana dashboard
 * returns data, so no panel shows a metric the code does not export. And the control plane's
 * edge latency histogram is exactly the sum of what the agents measured.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { histogramQuantile } from '../../common/latency-histogram.js';
import {
  rolloutWorkflowId,
  type ClassStatus,
  type RolloutSpec,
  type RolloutStatus,
} from '../../common/rollout.js';
import { freePort, loadToolchain, ManagedProcess, REPO_ROOT } from '../../services/stack/index.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import {
  ADMIN_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { infer, servedModel } from '../helpers/distribution.js';
import {
  startCanaryAndBrokenAgent,
  statusWhen,
  temporalOption,
  tinySpec,
} from '../helpers/rollouts.js';
import { testNats, testStack, testTemporal } from '../helpers/stack.js';
import {
  asPromQL,
  dashboardQueries,
  DASHBOARD_DIR,
  GRAFANA_DIR,
  loadDashboards,
  metricNames,
  panelsOf,
} from './dashboards.js';

const PROMETHEUS_DIR = join(REPO_ROOT, 'deploy/prometheus');
const JOBS = {
  controlPlane: 'edgeforge-control-plane',
  orchestrator: 'edgeforge-orchestrator',
  gpuWorker: 'edgeforge-gpu-worker',
  agents: 'edgeforge-agents',
};

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

const AVX2 = { cpuinfo: 'amd-ryzen-9-5950x-zen3' };
const VNNI = { cpuinfo: 'intel-xeon-gold-6242-cascade-lake' };
/** One 8×8 digit, flattened: what the rollouts' small_cnn students take. */
const DIGIT = Array.from({ length: 64 }, (_, i) => (i % 9 === 0 ? 12 : 0));

type QueryData = {
  resultType: 'vector' | 'matrix' | 'scalar' | 'string';
  result:
    | { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[]
    | [number, string];
};

async function prometheusApi(url: string, promql: string): Promise<QueryData> {
  const response = await fetch(url);
  const body = (await response.json()) as { status: string; error?: string; data?: QueryData };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
  return body.data!;
}

/** Prometheus's instant query API; resolves with the result or throws what it said. */
function query(prometheus: string, promql: string) {
  return prometheusApi(`${prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`, promql);
}

/**
 * A range query from `startMs` to now, one step a second: how Grafana evaluates annotations
 * over the dashboard's time range (the steps overlap the 5 s `$__interval`, so no event between
 * two windows is missed).
 */
function queryRange(prometheus: string, promql: string, startMs: number) {
  const params = new URLSearchParams({
    query: promql,
    start: String(startMs / 1000),
    end: String(Date.now() / 1000),
    step: '1',
  });
  return prometheusApi(`${prometheus}/api/v1/query_range?${params.toString()}`, promql);
}

/** The series of an instant vector result, as label set and value. */
function rowsOf(data: QueryData): { metric: Record<string, string>; value: number }[] {
  expect(data.resultType).toBe('vector');
  return (data.result as { metric: Record<string, string>; value: [number, string] }[]).map(
    (r) => ({ metric: r.metric, value: Number(r.value[1]) }),
  );
}

/**
 * How many series of a result have a finite number (NaN is what an empty histogram gives), in
 * a range result at some step.
 */
function finiteSamples(data: QueryData): number {
  if (data.resultType === 'scalar') return Number.isFinite(Number(data.result[1])) ? 1 : 0;
  return (data.result as { value?: [number, string]; values?: [number, string][] }[]).filter((r) =>
    (r.values ?? (r.value ? [r.value] : [])).some(([, v]) => Number.isFinite(Number(v))),
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

const classOf = (status: RolloutStatus, hardwareClass: string): ClassStatus => {
  const found = status.classes.find((c) => c.hardwareClass === hardwareClass);
  expect(found, `class ${hardwareClass} in rollout ${status.rolloutId}`).toBeDefined();
  return found!;
};

/**
 * Starts a rollout as an operator would (the control plane's StartRollout, which starts the
 * workflow on the production orchestrator task queue), terminated when the test ends if it still
 * runs then.
 */
async function startRollout(
  api: ReturnType<typeof rawClients>,
  client: Client,
  spec: RolloutSpec,
): Promise<WorkflowHandle> {
  const started = await api.startRollout({ specJson: JSON.stringify(spec) }, ADMIN_TOKEN);
  expect(started.workflowId).toBe(rolloutWorkflowId(spec.rolloutId));
  const handle = client.workflow.getHandle(started.workflowId);
  // Registered after testTemporal's cleanup (the client's), so it runs before that closes.
  onTestFinished(async () => {
    await handle.terminate('test finished').catch(() => {});
  });
  return handle;
}

describe('metrics of the running stack', () => {
  it('pass promtool check metrics, and feed every dashboard query in a real Prometheus', async () => {
    const nats = await testNats('observability');
    // Also the rollout records of earlier tests (some left running), which would feed the panels.
    await resetFleetState(nats);
    const runId = `obs-${randomUUID().slice(0, 8)}`;

    const cp = await startTestControlPlane(temporalOption());
    const api = rawClients(cp.address);
    // Two devices of one class, the second (not a canary: the spec names the first) failing the
    // health check of every model it activates; and a device of another class.
    const { canary, broken } = await startCanaryAndBrokenAgent(cp.address, AVX2, runId);
    const baking = await startTestAgent(cp.address, VNNI);
    const agents = [canary, broken, baking];
    const [rolledBackClass, bakingClass] = [canary.hardwareClass!, baking.hardwareClass!];
    expect(broken.hardwareClass).toBe(rolledBackClass);
    expect(bakingClass).not.toBe(rolledBackClass);
    /** The agents that serve a model the rollouts activated (the broken one serves none). */
    const serving = [canary, baking];

    const [orchestratorUrl, gpuUrl] = await Promise.all([
      startOrchestratorProcess(join(cp.dataDir, 'manifest-signing.pem')),
      gpuWorkerMetricsUrl(),
    ]);
    const endpoints = {
      'control plane': cp.metricsUrl,
      ...Object.fromEntries(agents.map((a) => [`agent ${a.deviceId}`, a.metricsUrl!])),
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
          ...agents.map(() => `${JOBS.agents} 1`),
          `${JOBS.controlPlane} 1`,
          `${JOBS.gpuWorker} 1`,
          `${JOBS.orchestrator} 1`,
        ].sort(),
      );
    }, 30_000);

    // Work for every panel, all of it the rollouts' own: teachers and students trained on the
    // gpu worker, variants benchmarked on the canaries, then activated in waves. One rollout
    // rolls its second wave back and ends; the other stays in its canary wave's long bake, so
    // that a rollout is running while the dashboards are read. Two rollouts, started together,
    // because a spec has one bake time: in one rollout the rollback comes after two bakes, so a
    // class still running then would need a third wave and the test a bake's worth longer.
    const rolledBackSpec = tinySpec(`${runId}-rollback`, {
      hardwareClasses: [rolledBackClass],
      canaryDevices: [canary.deviceId!],
    });
    const bakingSpec = tinySpec(`${runId}-baking`, {
      hardwareClasses: [bakingClass],
      waves: { percents: [100], bakeSeconds: 3600, maxFailedShare: 0.2, maxP95Regression: 10 },
    });
    const { client } = await testTemporal();
    const [rolledBackRollout, bakingRollout] = await Promise.all([
      startRollout(api, client, rolledBackSpec),
      startRollout(api, client, bakingSpec),
    ]);
    const [rolledBack, bakingStatus] = await Promise.all([
      rolledBackRollout.result() as Promise<RolloutStatus>,
      statusWhen(bakingRollout, (s) =>
        s.classes.some((c) => c.hardwareClass === bakingClass && c.waves[0]?.state === 'baking'),
      ),
    ]);
    const rolledBackClassStatus = classOf(rolledBack, rolledBackClass);
    expect(rolledBackClassStatus.canaries).toEqual([canary.deviceId]);
    expect(rolledBackClassStatus.phase, rolledBackClassStatus.reason).toBe('rolled_back');
    expect(rolledBackClassStatus.waves.map((w) => w.state)).toEqual(['passed', 'rolled_back']);
    expect(rolledBack.phase).toBe('failed');
    expect(bakingStatus.phase).toBe('rolling_out');
    // The canary keeps the winner, the broken device serves nothing, the baking class's device
    // serves its rollout's winner.
    const chosen = [rolledBackClassStatus.chosen!, classOf(bakingStatus, bakingClass).chosen!];
    for (const [i, agent] of serving.entries()) {
      await eventually(async () =>
        expect(await servedModel(agent.inferenceUrl!)).toMatchObject({
          variant: chosen[i]!.variant,
          sha256: chosen[i]!.sha256,
        }),
      );
    }
    expect(await servedModel(broken.inferenceUrl!)).toBe(503);

    // Serve requests until the checks are done, at least 50 per agent before they start.
    let load = true;
    const served = serving.map(() => 0);
    const loop = Promise.all(
      serving.map(async (agent, i) => {
        while (load) {
          expect((await infer(agent, DIGIT)).status).toBe(200);
          served[i]! += 1;
          await new Promise((r) => setTimeout(r, 10));
        }
      }),
    );
    const queries = dashboardQueries();
    try {
      await eventually(() => expect(Math.min(...served)).toBeGreaterThanOrEqual(50), 60_000);
      // promtool check metrics on every endpoint, now that every series exists.
      for (const [name, url] of Object.entries(endpoints)) {
        const body = await (await fetch(url)).text();
        const result = run(promtool(), ['check', 'metrics'], body);
        expect(result.status, `${name} (${url}):\n${result.output}`).toBe(0);
        expect(result.output.trim(), `${name} (${url})`).toBe('');
      }

      // Every dashboard query, as Grafana would send it, returns data: panels and variables now,
      // annotations over the time since Prometheus started (the rollouts' whole life).
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
          const promql = asPromQL(q.expr, range);
          const data =
            q.kind === 'annotation'
              ? await queryRange(prometheus.url, promql, prometheus.startedAt)
              : await query(prometheus.url, promql);
          if (finiteSamples(data) === 0) problems.push(`${q.id}: no data for ${promql}`);
        }
        expect(problems).toEqual([]);
      }, 90_000);

      // And the rollout panels show these rollouts: the rolled-back wave, both rollouts' devices,
      // the running one, the rollbacks and activations as annotations, the rollouts' training.
      const rows = async (promql: string) => rowsOf(await query(prometheus.url, promql));
      const value = async (promql: string) => {
        const found = await rows(promql);
        expect(found, promql).toHaveLength(1);
        return found[0]!.value;
      };
      const [rolledBackId, bakingId] = [rolledBackSpec.rolloutId, bakingSpec.rolloutId];
      await eventually(async () => {
        expect(
          await value(`edgeforge_rollout_rollbacks_total{hardware_class="${rolledBackClass}"}`),
        ).toBe(1);
        expect(await value(`edgeforge_rollouts{phase="rolling_out"}`)).toBe(1);
        expect(await value(`edgeforge_rollouts{phase="failed"}`)).toBe(1);
        const devices = await rows(`edgeforge_rollout_class_devices > 0`);
        expect(
          devices.map((r) => `${r.metric.rollout_id} ${r.metric.hardware_class} ${r.metric.state}`),
        ).toEqual(
          expect.arrayContaining([
            `${rolledBackId} ${rolledBackClass} done`,
            `${rolledBackId} ${rolledBackClass} failed`,
            `${bakingId} ${bakingClass} pending`,
          ]),
        );
        expect(
          await rows(
            `edgeforge_rollout_updated_timestamp_seconds{rollout_id="${bakingId}", phase="rolling_out"}`,
          ),
        ).toHaveLength(1);
        const since = (promql: string) =>
          queryRange(prometheus.url, promql, prometheus.startedAt).then((d) =>
            (d.result as { metric: Record<string, string> }[]).map((r) => r.metric),
          );
        const events = (event: string) =>
          since(
            `sum by (hardware_class) (increase(edgeforge_model_events_total{event=~"${event}"}[5s])) > 0`,
          );
        expect(
          (await events('rolled_back|health_check_failed')).map((m) => m.hardware_class),
        ).toEqual([rolledBackClass]);
        expect((await events('activated')).map((m) => m.hardware_class).sort()).toEqual(
          [rolledBackClass, bakingClass].sort(),
        );
        const trained = await rows(
          `sum by (activity) (increase(edgeforge_gpu_activity_duration_seconds_count{activity=~"prepare_teacher|distill_student", outcome="completed"}[${Math.ceil((Date.now() - prometheus.startedAt) / 1000)}s]))`,
        );
        expect(trained.map((r) => r.metric.activity).sort()).toEqual([
          'distill_student',
          'prepare_teacher',
        ]);
        expect(Math.min(...trained.map((r) => r.value))).toBeGreaterThan(0);
      }, 30_000);
    } finally {
      load = false;
      await loop;
    }

    // Once the agents' last latencies arrived, the control plane's histogram is exactly the sum
    // of theirs, bucket for bucket, and each device's serving histogram matches its agent.
    const edge = 'edgeforge_edge_inference_latency_seconds';
    await eventually(async () => {
      const cpText = await (await fetch(cp.metricsUrl)).text();
      for (const agent of serving) {
        const agentText = await (await fetch(agent.metricsUrl!)).text();
        const { activeModel } = cp.registry.get(agent.deviceId!)!;
        const labels = {
          hardware_class: agent.hardwareClass!,
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
    const histogram = cp.registry.get(canary.deviceId!)!.serving!;
    await eventually(async () => {
      const data = await query(
        prometheus.url,
        `histogram_quantile(0.95, sum by (le) (${edge}_bucket{hardware_class="${rolledBackClass}"}))`,
      );
      const promValue = Number((data.result as { value: [number, string] }[])[0]!.value[1]);
      const ours = histogramQuantile(histogram.bucketUpperBounds, histogram.bucketCounts, 0.95);
      expect(ours).toBeGreaterThan(0);
      expect(promValue).toBeCloseTo(ours, 9);
    }, 15_000);

    // Cancelling the running rollout (as an operator would) ends it; its record says so.
    expect(
      await api.cancelRollout(
        { rolloutId: bakingSpec.rolloutId, reason: 'test done' },
        ADMIN_TOKEN,
      ),
    ).toEqual({ cancelled: true });
    await expect(bakingRollout.result()).rejects.toThrow();
    const ended = await api.getRollout({ rolloutId: bakingSpec.rolloutId }, ADMIN_TOKEN);
    expect(ended.summary?.phase).toBe('cancelled');
    console.log(
      `[observability] ${queries.length} dashboard queries returned data from rollout ` +
        `${rolledBackSpec.rolloutId} (${rolledBackClass}: waves ` +
        `${rolledBackClassStatus.waves.map((w) => w.state).join(', ')}) and rollout ` +
        `${bakingSpec.rolloutId} (${bakingClass}: baking, then cancelled)`,
    );
  }, 600_000);
});
