import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectNats } from '../../common/nats.js';
import {
  loadToolchain,
  startNatsServer,
  type RunningNatsServer,
} from '../../services/stack/index.js';
import { natsAuthOf, startTestControlPlane } from '../helpers/control-plane.js';
import { hotSample, infer, topClass, TestOrchestrator } from '../helpers/distribution.js';
import { npzBytes } from '../helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../helpers/onnx-models.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { startThrottledProxy } from '../helpers/throttled-proxy.js';

/** 1024 features × 1000 classes: a 4 MB model, four seconds through the 1 MB/s link. */
const BIG = { sampleShape: [1, 32, 32], classes: 1000 };
const LINK_BYTES_PER_SECOND = 1_000_000;

/**
 * A private nats-server, so killing it disturbs no other test (restarted on the same port with the
 * same store and passwords, as a real server comes back), a control plane that hands agents a
 * 1 MB/s link to it, a Pi agent, and a 4 MB model it is told to run.
 */
async function bigDownloadOverSlowLink(downloadStallMs: number) {
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-nats-restart-'));
  const toolchain = loadToolchain();
  const options = {
    binary: toolchain.natsServer,
    storeDir: join(dir, 'jetstream'),
    logFile: join(dir, 'nats-server.log'),
  };
  let nats: RunningNatsServer = await startNatsServer(options);
  onTestFinished(async () => {
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const link = await startThrottledProxy(nats.port, LINK_BYTES_PER_SECOND);
  onTestFinished(() => link.close());
  const service = await connectNats(nats.url, { name: 'orchestrator' });
  onTestFinished(() => service.close());

  // The control plane lives on this server: its auth callout lets the agent in.
  const cp = await startTestControlPlane({
    nats: service,
    natsAuth: await natsAuthOf(nats),
    advertisedNatsUrl: `nats://127.0.0.1:${link.port}`,
  });
  const orchestrator = await TestOrchestrator.open(service, cp.dataDir);
  const agent = await startTestAgent(
    cp.address,
    { cpuinfo: 'raspberry-pi-4' },
    { downloadStallMs },
  );
  const deviceId = agent.deviceId!;
  const signed = await orchestrator.publish({
    model: hotFeatureClassifier(BIG),
    holdout: npzBytes(matchingHoldout({ ...BIG, samples: 20 })),
    ...BIG,
    variant: 'fp32_big',
    hardwareClasses: [agent.hardwareClass!],
  });

  const sentBefore = link.downstreamBytes;
  await orchestrator.run(deviceId, 'r-big', signed);
  await eventually(() =>
    expect(link.downstreamBytes - sentBefore).toBeGreaterThan(signed.manifest.model.size / 4),
  );
  expect(agent.status.models?.state).toBe('DEVICE_STATE_DOWNLOADING');
  const lastStatus = () => cp.registry.get(deviceId)?.lastStatus;
  const objectBytes = signed.manifest.model.size + (signed.manifest.holdout?.size ?? 0);
  let sentAtKill = 0;
  return {
    agent,
    lastStatus,
    /**
     * The transfer resumed after what had arrived before the server went down: since the kill
     * the link carried the rest of the model and the holdout, well short of both in full.
     * Read from byte 0 again, it would carry at least objectBytes.
     */
    expectResumed() {
      const deliveredBeforeKill = sentAtKill - sentBefore;
      const sinceKill = link.downstreamBytes - sentAtKill;
      expect(deliveredBeforeKill).toBeGreaterThan(signed.manifest.model.size / 4);
      expect(sinceKill).toBeLessThan(objectBytes - deliveredBeforeKill / 2);
    },
    /** The big model ends up serving, and no partial download is left behind. */
    async activatedWithNothingPartialLeft() {
      await eventually(
        () =>
          expect(lastStatus()).toMatchObject({
            event: 'STATUS_EVENT_ACTIVATED',
            variant: 'fp32_big',
          }),
        60_000,
      );
      expect(await readdir(join(agent.options.dataDir, 'downloads'))).toEqual([]);
    },
    async killNats() {
      nats.process.kill('SIGKILL');
      await nats.process.exited;
      sentAtKill = link.downstreamBytes;
    },
    async restartNats() {
      nats = await startNatsServer({ ...options, port: nats.port, secrets: nats.secrets });
    },
  };
}

describe('model download over an unreliable NATS', () => {
  it('finishes a download that a NATS server restart cut off', async () => {
    const t = await bigDownloadOverSlowLink(2_000);
    await t.killNats();
    // The transfer stalls and fails. The control plane's registry lives on this server too, so
    // the device's report waits; the device's own metrics say it.
    await eventually(async () => {
      const metrics = await (await fetch(t.agent.metricsUrl!)).text();
      expect(metrics).toMatch(/edgeforge_agent_model_events_total\{event="download_failed"\} 1/);
    });

    await t.restartNats();
    await t.activatedWithNothingPartialLeft();
    t.expectResumed();
    const { status, body } = await infer(t.agent, hotSample(321, 1024));
    expect([status, body.variant, topClass(body)]).toEqual([200, 'fp32_big', 321]);
  });

  it('resumes the transfer once reconnected, without waiting out the stall timeout', async () => {
    // A stall timeout far beyond the test's: only ending the transfer on reconnect (and
    // resuming it at once) can finish in time.
    const t = await bigDownloadOverSlowLink(600_000);
    await t.killNats();
    await t.restartNats();
    await t.activatedWithNothingPartialLeft();
    t.expectResumed();
  });
});
