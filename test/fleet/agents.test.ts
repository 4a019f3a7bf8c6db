import { beforeEach, describe, expect, it } from 'vitest';
import { Connectivity } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import {
  ADMIN_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { testNats } from '../helpers/stack.js';

const enrollments = async (metricsUrl: string) =>
  Number(
    /^edgeforge_fleet_enrollments_total\{kind="new"\} (\d+)/m.exec(
      await (await fetch(metricsUrl)).text(),
    )?.[1] ?? 0,
  );

describe('real agents against the real control plane', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('enroll devices of different hardware into different classes and keep them online', async () => {
    const cp = await startTestControlPlane();
    const pi = await startTestAgent(cp.address, {
      cpuinfo: 'raspberry-pi-4',
      memoryBytes: 3_972_844_544, // what a 4 GB Pi 4 reports as MemTotal
    });
    const xeon = await startTestAgent(cp.address, {
      cpuinfo: 'intel-xeon-gold-6242-cascade-lake',
      memoryBytes: 16 * 1024 ** 3,
    });
    expect(pi.hardwareClass).toBe('aarch64-neon-nofp16-cpu-4g');
    expect(xeon.hardwareClass).toBe('x86_64-vnni-nofp16-cpu-16g');

    await eventually(() =>
      expect(cp.registry.get(pi.deviceId!)?.heartbeatCount).toBeGreaterThanOrEqual(2),
    );
    const { devices } = await rawClients(cp.address).listDevices(
      { hardwareClass: '', pageSize: 0, pageToken: '' },
      ADMIN_TOKEN,
    );
    expect(devices.map((d) => [d.deviceId, d.hardwareClass, d.connectivity]).sort()).toEqual(
      [
        [pi.deviceId, 'aarch64-neon-nofp16-cpu-4g', Connectivity.CONNECTIVITY_ONLINE],
        [xeon.deviceId, 'x86_64-vnni-nofp16-cpu-16g', Connectivity.CONNECTIVITY_ONLINE],
      ].sort(),
    );
    // The agent's own /metrics counts what it did.
    const agentMetrics = await (await fetch(pi.metricsUrl!)).text();
    expect(agentMetrics).toMatch(/edgeforge_agent_heartbeats_total\{result="ok"\} [1-9]/);
  });

  it('come back after a control-plane restart without enrolling again', async () => {
    const cp = await startTestControlPlane();
    const agent = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-5' });
    await eventually(() => expect(agent.status.heartbeatsOk).toBeGreaterThanOrEqual(1));
    expect(await enrollments(cp.metricsUrl)).toBe(1);

    await cp.stop();
    await eventually(() => expect(agent.status.heartbeatsFailed).toBeGreaterThanOrEqual(1));
    const restarted = await cp.restart({ listen: cp.address });
    const beatsBefore = agent.status.heartbeatsOk;
    await eventually(() => expect(agent.status.heartbeatsOk).toBeGreaterThan(beatsBefore + 1));

    expect(agent.status.enrollments).toBe(1);
    expect(await enrollments(restarted.metricsUrl)).toBe(0);
    expect(restarted.registry.get(agent.deviceId!)?.heartbeatCount).toBeGreaterThan(beatsBefore);
  });

  it('an agent that stops heartbeating turns stale, then offline', async () => {
    const cp = await startTestControlPlane({ heartbeatIntervalSeconds: 1 });
    const agent = await startTestAgent(cp.address, { cpuinfo: 'amd-ryzen-9-5950x-zen3' });
    const deviceId = agent.deviceId!;
    const api = rawClients(cp.address);
    const connectivity = async () =>
      (await api.getDevice({ deviceId }, ADMIN_TOKEN)).device?.connectivity;
    expect(await connectivity()).toBe(Connectivity.CONNECTIVITY_ONLINE);

    await agent.stop(); // as good as killed: it never beats again
    await eventually(async () =>
      expect(await connectivity()).toBe(Connectivity.CONNECTIVITY_STALE),
    );
    await eventually(async () =>
      expect(await connectivity()).toBe(Connectivity.CONNECTIVITY_OFFLINE),
    );
    expect(await (await fetch(cp.metricsUrl)).text()).toContain(
      'edgeforge_fleet_devices{hardware_class="x86_64-avx2-nofp16-cpu-4g",connectivity="offline"} 1',
    );
  });
});
