import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dump, load } from 'js-yaml';
import { REPO_ROOT } from './toolchain.js';
import { ManagedProcess, freePort } from './managed-process.js';

/** The repository's Prometheus config (prometheus.yml, rules/), for one host. */
export const PROMETHEUS_DIR = join(REPO_ROOT, 'deploy/prometheus');

/** The scrape jobs of deploy/prometheus/prometheus.yml. */
export const PROMETHEUS_JOBS = {
  controlPlane: 'edgeforge-control-plane',
  orchestrator: 'edgeforge-orchestrator',
  gpuWorker: 'edgeforge-gpu-worker',
  agents: 'edgeforge-agents',
} as const;

interface ScrapeConfig {
  job_name: string;
  static_configs?: { targets: string[] }[];
  file_sd_configs?: { files: string[]; refresh_interval?: string }[];
  [key: string]: unknown;
}

interface PrometheusConfig {
  global?: Record<string, unknown>;
  rule_files?: string[];
  scrape_configs: ScrapeConfig[];
  [key: string]: unknown;
}

export interface PrometheusTargets {
  /** host:port of each job's static targets (the agents come from `agentTargetsFile`). */
  controlPlane: string[];
  orchestrator: string[];
  gpuWorker: string[];
  /** The file_sd file the agents job reads (JSON, see addAgentMetricsTargets). */
  agentTargetsFile: string;
}

/**
 * The repository's prometheus.yml with these targets filled in: static targets for the central
 * services, the agents from `agentTargetsFile`, rule files made absolute. `global` overrides the
 * repository's (e.g. a shorter scrape interval).
 */
export async function prometheusConfig(
  targets: PrometheusTargets,
  global?: Record<string, unknown>,
): Promise<string> {
  const config = load(
    await readFile(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8'),
  ) as PrometheusConfig;
  if (global) config.global = global;
  config.rule_files = (config.rule_files ?? []).map((f) => join(PROMETHEUS_DIR, f));
  const statics: Record<string, string[]> = {
    [PROMETHEUS_JOBS.controlPlane]: targets.controlPlane,
    [PROMETHEUS_JOBS.orchestrator]: targets.orchestrator,
    [PROMETHEUS_JOBS.gpuWorker]: targets.gpuWorker,
  };
  const jobs = config.scrape_configs.map((s) => s.job_name).sort();
  if (jobs.join() !== Object.values(PROMETHEUS_JOBS).sort().join()) {
    throw new Error(
      `deploy/prometheus/prometheus.yml has the jobs ${jobs.join(', ')}, not ${Object.values(PROMETHEUS_JOBS).join(', ')}`,
    );
  }
  for (const scrape of config.scrape_configs) {
    if (scrape.job_name === PROMETHEUS_JOBS.agents) {
      const refresh = scrape.file_sd_configs?.[0]?.refresh_interval;
      scrape.file_sd_configs = [
        { files: [targets.agentTargetsFile], ...(refresh ? { refresh_interval: refresh } : {}) },
      ];
    } else {
      scrape.static_configs = [{ targets: statics[scrape.job_name]! }];
    }
  }
  return dump(config);
}

/** host:port of a URL such as http://127.0.0.1:9465/metrics. */
const hostPort = (url: string) => new URL(url).host;

/**
 * Adds agents' /metrics URLs to a file_sd file (a JSON list of target groups), replacing the
 * file in one step so that Prometheus never reads half of it.
 */
export async function addAgentMetricsTargets(file: string, metricsUrls: string[]): Promise<void> {
  const groups = JSON.parse(await readFile(file, 'utf8').catch(() => '[]')) as {
    targets: string[];
  }[];
  const known = new Set(groups.flatMap((g) => g.targets));
  const added = metricsUrls.map(hostPort).filter((t) => !known.has(t));
  if (added.length === 0) return;
  groups.push({ targets: added });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(groups, null, 2));
  await rename(tmp, file);
}

export interface RunningPrometheus {
  url: string;
  /** The file_sd file for the agents job. */
  agentTargetsFile: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  binary: string;
  /** Holds prometheus.yml, the agents' file_sd file and the TSDB. */
  dir: string;
  /** The central services' /metrics URLs; agents are added later (addAgentMetricsTargets). */
  metricsUrls: { controlPlane: string; orchestrator: string; gpuWorker: string };
  logFile?: string;
}

/**
 * Starts Prometheus on a free loopback port with the repository's config and rules, scraping
 * the given services and the agents listed in `<dir>/agents.json` (empty at start).
 */
export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const { dir, metricsUrls } = options;
  await mkdir(dir, { recursive: true });
  const agentTargetsFile = join(dir, 'agents.json');
  await writeFile(agentTargetsFile, '[]\n');
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(
    configFile,
    await prometheusConfig({
      controlPlane: [hostPort(metricsUrls.controlPlane)],
      orchestrator: [hostPort(metricsUrls.orchestrator)],
      gpuWorker: [hostPort(metricsUrls.gpuWorker)],
      agentTargetsFile,
    }),
  );
  const port = await freePort();
  const proc = new ManagedProcess({
    name: 'prometheus',
    command: options.binary,
    args: [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    logFile: options.logFile,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!proc.isRunning) throw proc.failure('exited before it was ready');
      const ready = await fetch(`${url}/-/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw proc.failure(`was not ready at ${url} within 60 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { url, agentTargetsFile, process: proc, stop: () => proc.stop() };
}
