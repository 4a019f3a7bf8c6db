import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  addAgentMetricsTargets,
  PROMETHEUS_DIR,
  PROMETHEUS_JOBS,
  REPO_ROOT,
  type StackEndpoints,
} from '../../services/stack/index.js';
import { eventually } from '../helpers/agents.js';

interface Target {
  labels: Record<string, string>;
  health: string;
  lastError: string;
}

const get = async <T>(url: string): Promise<T> => {
  const response = await fetch(url);
  expect(response.status, url).toBe(200);
  return ((await response.json()) as { data: T }).data;
};

/** The rule groups of deploy/prometheus/rules/*.yml. */
const repoRuleGroups = () =>
  readdirSync(join(PROMETHEUS_DIR, 'rules'))
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap(
      (f) =>
        (
          load(readFileSync(join(PROMETHEUS_DIR, 'rules', f), 'utf8')) as {
            groups: { name: string }[];
          }
        ).groups,
    )
    .map((g) => g.name)
    .sort();

/**
 * `edgeforge up --prometheus` as a user runs it, in its own data dir: Prometheus scrapes the
 * stack's control plane, orchestrator and gpu worker with the repository's config and rules,
 * picks agents up from its file_sd file, and stops with the stack on Ctrl-C.
 */
describe('edgeforge up --prometheus', () => {
  it('scrapes the stack with the repository config and rules, and stops on SIGINT', async () => {
    const root = await mkdtemp(join(tmpdir(), 'edgeforge-cli-up-'));
    onTestFinished(() => rm(root, { recursive: true, force: true }));
    const dataDir = join(root, 'data');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', `${REPO_ROOT}cli/main.ts`, 'up', '--prometheus', '--no-ui'],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, EDGEFORGE_DATA_DIR: dataDir },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });

    await eventually(() => {
      expect(child.exitCode, output).toBeNull();
      expect(output).toMatch(/edgeforge stack is up/);
    }, 240_000);
    const endpoints = JSON.parse(
      readFileSync(join(dataDir, 'endpoints.json'), 'utf8'),
    ) as StackEndpoints;
    const prometheus = endpoints.prometheusUrl!;
    expect(prometheus).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(output).toContain(`Prometheus        ${prometheus}`);
    for (const url of [endpoints.orchestratorMetricsUrl, endpoints.gpuWorkerMetricsUrl])
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    // An agent target added to the file_sd file (here: the control plane's /metrics, standing
    // in for an agent's) is picked up without a restart.
    await addAgentMetricsTargets(endpoints.prometheusAgentTargetsFile!, [
      endpoints.controlPlaneMetricsUrl,
    ]);

    const hostPort = (url: string) => new URL(url).host;
    await eventually(async () => {
      const { activeTargets } = await get<{ activeTargets: Target[] }>(
        `${prometheus}/api/v1/targets?state=active`,
      );
      const seen = activeTargets
        .map((t) => `${t.labels.job} ${t.labels.instance} ${t.health}${t.lastError}`)
        .sort();
      expect(seen).toEqual(
        [
          `${PROMETHEUS_JOBS.agents} ${hostPort(endpoints.controlPlaneMetricsUrl)} up`,
          `${PROMETHEUS_JOBS.controlPlane} ${hostPort(endpoints.controlPlaneMetricsUrl)} up`,
          `${PROMETHEUS_JOBS.gpuWorker} ${hostPort(endpoints.gpuWorkerMetricsUrl)} up`,
          `${PROMETHEUS_JOBS.orchestrator} ${hostPort(endpoints.orchestratorMetricsUrl)} up`,
        ].sort(),
      );
    }, 120_000);

    const { groups } = await get<{ groups: { name: string }[] }>(`${prometheus}/api/v1/rules`);
    expect(groups.map((g) => g.name).sort()).toEqual(repoRuleGroups());
    expect(groups.length).toBeGreaterThan(0);

    child.kill('SIGINT');
    expect(await exited, output).toBe(130);
    await expect(fetch(`${prometheus}/-/ready`)).rejects.toThrow();
    expect(existsSync(join(dataDir, 'endpoints.json'))).toBe(false);
  }, 420_000);
});
