import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { pino } from 'pino';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { ModelFetcher, type DownloadResume } from '../../agent/download/model-fetcher.js';
import { progressFileFor, type DownloadProgress } from '../../agent/download/partial-download.js';
import { ModelStore } from '../../agent/models/model-store.js';
import { NatsLink } from '../../agent/nats/nats-link.js';
import { ManifestRefusedError, type ModelManifest } from '../../common/manifest.js';
import { IdentityStore } from '../../agent/identity/identity-store.js';
import { startAgentProcess } from '../helpers/agent-process.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import { flipByte, TestOrchestrator } from '../helpers/distribution.js';
import { testManifest } from '../helpers/manifests.js';
import { hotFeatureClassifier } from '../helpers/onnx-models.js';
import { testNats, testStack } from '../helpers/stack.js';
import { startThrottledProxy, type ThrottledProxy } from '../helpers/throttled-proxy.js';

/** 1024 features × 1000 classes: a 4 MB model, four seconds through the 1 MB/s link. */
const BIG = { sampleShape: [1, 32, 32], classes: 1000 };
const LINK_BYTES_PER_SECOND = 1_000_000;
/** What a connection carries besides the object's chunks (INFO, API replies, heartbeats). */
const PROTOCOL_SLACK_BYTES = 128 * 1024;
const BACKOFF = { baseMs: 50, capMs: 500 };
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The run's NATS server as agents are given it, through `proxy`. */
function agentUrlVia(proxy: ThrottledProxy): string {
  return testStack().agentNatsUrl.replace(/:\d+$/, `:${proxy.port}`);
}

/** A logger that keeps its lines, for the tests to read. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

let models = 0;

/**
 * A big ONNX model in a class's release bucket (a new one for each test), and the agent side of
 * a download as ModelService wires it: a data dir with its model store, a NATS link as an
 * enrolled device of that class and a ModelFetcher, here without the rest of the agent so the
 * test can reach in between attempts.
 */
async function setUp() {
  const service = await testNats('orchestrator');
  const cp = await startTestControlPlane();
  // Enrolled by a real agent: its identity is what the link connects to NATS with.
  const device = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
  const identity = (await new IdentityStore(device.options.dataDir).load())!;
  const model = hotFeatureClassifier({ ...BIG, scale: 30 + models++ });
  const manifest = testManifest({ model, ...BIG, hardwareClasses: [identity.hardwareClass] });
  const objects = await new Objm(service).create(manifest.model.bucket);
  await objects.putBlob({ name: manifest.model.name }, model);
  const slow = await startThrottledProxy(natsPort(), LINK_BYTES_PER_SECOND);
  onTestFinished(() => slow.close());
  const fast = await startThrottledProxy(natsPort(), 1e9);
  onTestFinished(() => fast.close());
  const dataDir = await mkdtemp(join(tmpdir(), 'edgeforge-resume-'));
  onTestFinished(() => rm(dataDir, { recursive: true, force: true }));
  const store = new ModelStore(dataDir);
  await store.open();
  const partial = store.partialPath(manifest.model, 'onnx');
  const installed = store.modelFile(manifest);

  /** What an agent process has: a link, a fetcher, and its logs and resumes. */
  async function agentSide(url: string) {
    const { logger, lines } = capturingLogger();
    const link = new NatsLink({
      url,
      deviceId: identity.deviceId,
      credential: () => identity.credential,
      backoff: BACKOFF,
      logger,
    });
    onTestFinished(() => link.close());
    const resumes: DownloadResume[] = [];
    const failures: { attempt: number; error: string }[] = [];
    // The store is opened again, as an agent does at every start.
    const agentStore = new ModelStore(dataDir);
    await agentStore.open();
    const fetcher = new ModelFetcher({
      link,
      store: agentStore,
      stallMs: 600_000,
      backoff: BACKOFF,
      logger,
      onResume: (resume) => resumes.push(resume),
    });
    const fetch = (signal = new AbortController().signal) =>
      fetcher.fetch(manifest, signal, (error, attempt) =>
        failures.push({ attempt, error: error.message }),
      );
    return { link, fetch, resumes, failures, lines };
  }

  /** Resolves once the partial file holds `bytes`, with its size then. */
  const partialReaches = (bytes: number) =>
    eventually(async () => {
      const { size } = await stat(partial);
      expect(size).toBeGreaterThanOrEqual(bytes);
      return size;
    });

  /**
   * A first transfer over the slow link, stopped (as an agent stopping aborts it) once a third
   * of the model is written: leaves the partial file and its progress.
   */
  async function interruptedDownload(): Promise<DownloadProgress> {
    const agent = await agentSide(agentUrlVia(slow));
    const stop = new AbortController();
    const fetching = agent.fetch(stop.signal);
    await partialReaches(manifest.model.size / 3);
    stop.abort(new Error('the agent is stopping'));
    await expect(fetching).rejects.toThrow('the agent is stopping');
    await agent.link.close();
    const progress = JSON.parse(
      await readFile(progressFileFor(partial), 'utf8'),
    ) as DownloadProgress;
    // Everything written was fsynced and recorded on the way out.
    expect(progress.bytes).toBe((await stat(partial)).size);
    expect(progress.bytes).toBeLessThan(manifest.model.size);
    return progress;
  }

  return {
    service,
    objects,
    model,
    manifest,
    slow,
    fast,
    store,
    partial,
    installed,
    agentSide,
    partialReaches,
    interruptedDownload,
    /** downloads/ holds nothing, models/ the verified model or nothing. */
    async leftBehind() {
      return {
        downloads: await readdir(store.downloadsDir),
        installed: await store.has(installed),
      };
    },
  };
}

function natsPort(): number {
  return Number(/:(\d+)$/.exec(testStack().agentNatsUrl)![1]);
}

/** Bytes a transfer that resumed after `from` of `manifest`'s model may read, at most. */
const restOf = (manifest: ModelManifest, from: number) =>
  manifest.model.size - from + PROTOCOL_SLACK_BYTES;

describe('a model download resumes from the last chunk written', () => {
  it('after the NATS connection is re-established mid-download, reading only the rest', async () => {
    const t = await setUp();
    const agent = await t.agentSide(agentUrlVia(t.slow));
    const fetching = agent.fetch();
    const written = await t.partialReaches(t.manifest.model.size / 3);
    const fastBefore = t.fast.downstreamBytes;
    // The link moves (as to a restarted server): its reconnect listeners end the transfer.
    await agent.link.switchTo(agentUrlVia(t.fast));
    await fetching;

    expect(agent.failures).toEqual([
      { attempt: 1, error: expect.stringMatching(/re-established while reading/) as unknown },
    ]);
    expect(agent.resumes).toEqual([
      {
        object: t.manifest.model.name,
        bucket: t.manifest.model.bucket,
        attempt: 2,
        resumedFromBytes: expect.any(Number) as unknown,
        size: t.manifest.model.size,
      },
    ]);
    const from = agent.resumes[0]!.resumedFromBytes;
    expect(from).toBeGreaterThanOrEqual(written);
    expect(from).toBeLessThan(t.manifest.model.size);
    // The second transfer read the rest of the object, not all of it.
    const read = t.fast.downstreamBytes - fastBefore;
    expect(read).toBeGreaterThan(t.manifest.model.size - from);
    expect(read).toBeLessThan(restOf(t.manifest, from));

    expect(sha256(await readFile(t.installed))).toBe(t.manifest.model.sha256);
    expect(await t.leftBehind()).toEqual({ downloads: [], installed: true });
    expect(agent.lines).toContainEqual(
      expect.objectContaining({
        msg: 'resuming the download after the bytes already there',
        object: t.manifest.model.name,
        resumedFromBytes: from,
        attempt: 2,
      }),
    );
    expect(agent.lines).toContainEqual(
      expect.objectContaining({ msg: 'downloaded and verified', resumedFromBytes: from }),
    );
  });

  it('after the agent restarted, from the partial file and progress it left', async () => {
    const t = await setUp();
    const progress = await t.interruptedDownload();
    const fastBefore = t.fast.downstreamBytes;
    const agent = await t.agentSide(agentUrlVia(t.fast));
    await agent.fetch();

    expect(agent.resumes).toMatchObject([{ attempt: 1, resumedFromBytes: progress.bytes }]);
    expect(agent.failures).toEqual([]);
    expect(t.fast.downstreamBytes - fastBefore).toBeLessThan(restOf(t.manifest, progress.bytes));
    expect(sha256(await readFile(t.installed))).toBe(t.manifest.model.sha256);
    expect(await t.leftBehind()).toEqual({ downloads: [], installed: true });
  });

  it('starts over when the object was uploaded again since (another nuid)', async () => {
    const t = await setUp();
    const progress = await t.interruptedDownload();
    // The same bytes again: same digest and size, but new chunks under a new nuid.
    await t.objects.putBlob({ name: t.manifest.model.name }, t.model);
    expect((await t.objects.info(t.manifest.model.name))!.nuid).not.toBe(progress.nuid);
    const agent = await t.agentSide(agentUrlVia(t.fast));
    await agent.fetch();

    expect(agent.resumes).toEqual([]);
    expect(agent.lines).toContainEqual(
      expect.objectContaining({
        msg: 'cannot resume the download; starting it over',
        reason: 'the object changed since (nuid differs)',
      }),
    );
    expect(sha256(await readFile(t.installed))).toBe(t.manifest.model.sha256);
    expect(await t.leftBehind()).toEqual({ downloads: [], installed: true });
  });
});

describe('a resumed download is still checked over the whole file', () => {
  it('refuses a partial file damaged on disk between attempts, and installs nothing', async () => {
    const t = await setUp();
    const progress = await t.interruptedDownload();
    const file = await open(t.partial, 'r+');
    await file.write(flipByte(t.model.subarray(1000, 1001), 0), 0, 1, 1000);
    await file.close();
    const agent = await t.agentSide(agentUrlVia(t.fast));

    const refused = await agent.fetch().catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ManifestRefusedError);
    expect(refused).toMatchObject({ reason: 'digest_mismatch' });
    expect((refused as Error).message).toMatch(
      /^digest_mismatch: object .* has sha256 [0-9a-f]{64}; the manifest says [0-9a-f]{64}$/,
    );
    expect(agent.resumes).toMatchObject([{ resumedFromBytes: progress.bytes }]);
    expect(await t.leftBehind()).toEqual({ downloads: [], installed: false });
  });

  it('refuses an object whose chunk was tampered with in the store, and installs nothing', async () => {
    const t = await setUp();
    const progress = await t.interruptedDownload();
    // Swap the object's last chunk, still unread, for one with a byte flipped: same size, same
    // object info, so only the whole-file digest can tell.
    const stream = `OBJ_${t.manifest.model.bucket}`;
    const subject = `$O.${t.manifest.model.bucket}.C.${progress.nuid}`;
    const jsm = await jetstreamManager(t.service);
    const last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    expect(last!.seq).toBeGreaterThan(progress.lastSeq);
    await jsm.streams.deleteMessage(stream, last!.seq);
    await jetstream(t.service).publish(subject, flipByte(last!.data, 0));
    const agent = await t.agentSide(agentUrlVia(t.fast));

    await expect(agent.fetch()).rejects.toMatchObject({ reason: 'digest_mismatch' });
    expect(agent.resumes).toMatchObject([{ resumedFromBytes: progress.bytes }]);
    expect(await t.leftBehind()).toEqual({ downloads: [], installed: false });
  });
});

describe('an edge agent killed mid-download', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('resumes from its last checkpoint when it starts again, not from byte 0', async () => {
    const link = await startThrottledProxy(natsPort(), LINK_BYTES_PER_SECOND);
    onTestFinished(() => link.close());
    const cp = await startTestControlPlane({ advertisedNatsUrl: agentUrlVia(link) });
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-resume-agent-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const device = { cpuinfo: 'raspberry-pi-4' };
    const agent = await startAgentProcess(cp.address, device, dir);
    const signed = await orchestrator.publish({
      model: hotFeatureClassifier({ ...BIG, scale: 29 }),
      ...BIG,
      variant: 'fp32_big',
      hardwareClasses: [cp.registry.get(agent.deviceId)!.hardwareClass],
    });
    const { model } = signed.manifest;
    await orchestrator.run(agent.deviceId, 'r-killed', signed);

    // SIGKILL once a checkpoint past half the model is recorded: no chance to record more.
    const progressFile = progressFileFor(
      join(agent.dataDir, 'downloads', `${model.sha256}.onnx.part`),
    );
    const recorded = await eventually(async () => {
      const progress = JSON.parse(await readFile(progressFile, 'utf8')) as DownloadProgress;
      expect(progress.bytes).toBeGreaterThanOrEqual(model.size / 2);
      return progress.bytes;
    }, 60_000);
    agent.process.kill('SIGKILL');
    await agent.process.exited;
    const sentAtKill = link.downstreamBytes;

    const back = await startAgentProcess(cp.address, device, dir);
    await eventually(
      () =>
        expect(cp.registry.get(back.deviceId)?.lastStatus).toMatchObject({
          event: 'STATUS_EVENT_ACTIVATED',
          variant: 'fp32_big',
        }),
      60_000,
    );
    // At most a checkpoint's worth was lost: the agent read the rest, not the whole model.
    const readAfterRestart = link.downstreamBytes - sentAtKill;
    expect(readAfterRestart).toBeLessThan(model.size - recorded + PROTOCOL_SLACK_BYTES);
    expect(await readdir(join(back.dataDir, 'downloads'))).toEqual([]);
    expect(sha256(await readFile(join(back.dataDir, 'models', `${model.sha256}.onnx`)))).toBe(
      model.sha256,
    );
  });
});
