/**
 * A whole rollout on a three-node NATS JetStream cluster whose buckets have three replicas, with
 * one node SIGKILLed mid-rollout. The rollout runs through the same harness as the other rollout
 * tests, black box: start it, wait for its final status, look at what the devices serve.
 *
 * The gpu worker of the run talks to the run's single nats-server, so this test starts its own
 * Temporal dev server and gpu worker against the cluster (the gpu task queue is one name).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { describe, expect, it, onTestFinished } from 'vitest';
import { KV_BUCKETS, OBJECT_BUCKETS, objectStream, releaseBucket } from '../../common/names.js';
import { bucketOptions, parseNatsUrl } from '../../common/nats.js';
import { FINISHED_PHASES, type RolloutStatus } from '../../common/rollout.js';
import {
  loadToolchain,
  startGpuWorker,
  startTemporalDevServer,
} from '../../services/stack/index.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { natsAuthOf, startTestControlPlane } from '../helpers/control-plane.js';
import { servedModel } from '../helpers/distribution.js';
import { startTestNatsCluster } from '../helpers/nats-cluster.js';
import { startRolloutWorker, statusWhen, tinySpec } from '../helpers/rollouts.js';
import { testNats } from '../helpers/stack.js';

const VNNI = { cpuinfo: 'intel-xeon-gold-6242-cascade-lake' };
const REPLICAS = 3;
/**
 * A download whose consumer was on the killed node, over a connection to a node that stays up,
 * sees no reconnect: it is restarted only after this long without data (default 90 s, as long as
 * the tiny spec's report timeout; in production the report timeout is 600 s).
 */
const DOWNLOAD_STALL_MS = 20_000;
/** Verdicts of candidates that passed every check (the reference is the teacher, never served). */
const PASSED = new Set(['won', 'slower', 'reference']);

/** Every stream behind an edgeforge KV bucket or object store on the cluster. */
async function edgeforgeStreams(nats: Awaited<ReturnType<typeof testNats>>): Promise<StreamInfo[]> {
  const jsm = await jetstreamManager(nats);
  const streams: StreamInfo[] = [];
  for await (const info of jsm.streams.list()) {
    if (/^(KV|OBJ)_edgeforge_/.test(info.config.name)) streams.push(info);
  }
  return streams;
}

describe('a rollout on a three-node NATS cluster', () => {
  it(
    'succeeds with a node SIGKILLed mid-rollout, and no device ends on a model that failed a check',
    { timeout: 900_000 },
    async () => {
      const previousReplicas = process.env.EDGEFORGE_NATS_REPLICAS;
      process.env.EDGEFORGE_NATS_REPLICAS = String(REPLICAS);
      onTestFinished(() => {
        if (previousReplicas === undefined) delete process.env.EDGEFORGE_NATS_REPLICAS;
        else process.env.EDGEFORGE_NATS_REPLICAS = previousReplicas;
      });

      const cluster = await startTestNatsCluster();
      const dir = cluster.dir;
      const toolchain = loadToolchain();
      const temporal = await startTemporalDevServer({
        binary: toolchain.temporal,
        dbFile: join(dir, 'temporal.sqlite'),
        logFile: join(dir, 'temporal.log'),
      });
      onTestFinished(() => temporal.stop());
      const gpuWorker = await startGpuWorker({
        python: toolchain.python,
        temporalAddress: temporal.address,
        natsUrl: cluster.url,
        natsReplicas: REPLICAS,
        logFile: join(dir, 'gpu-worker.log'),
      });
      onTestFinished(() => gpuWorker.stop());

      const nats = await testNats('nats-cluster-test', cluster.url);
      // Every bucket with three replicas from the start, as a service creates it with
      // EDGEFORGE_NATS_REPLICAS=3 once its call site passes bucketOptions(); created here, the
      // test does not depend on which ones do yet (an existing bucket is opened as it is).
      for (const bucket of Object.values(KV_BUCKETS)) {
        await new Kvm(nats).create(bucket, bucketOptions({ history: 1 }));
      }
      for (const bucket of Object.values(OBJECT_BUCKETS)) {
        await new Objm(nats).create(bucket, bucketOptions());
      }

      const cp = await startTestControlPlane({
        nats: await testNats('control-plane', cluster.url),
        advertisedNatsUrl: cluster.agentUrl,
        natsAuth: await natsAuthOf(cluster),
        temporal: { address: temporal.address, namespace: 'default' },
      });
      const orchestrator = await startRolloutWorker(cp, {
        natsUrl: cluster.url,
        temporalAddress: temporal.address,
      });
      const startAgent = () =>
        startTestAgent(cp.address, VNNI, { downloadStallMs: DOWNLOAD_STALL_MS });
      const agents = [await startAgent(), await startAgent(), await startAgent()];
      // Each device was handed every node of the cluster, not one server.
      for (const agent of agents) {
        const identity = JSON.parse(
          await readFile(join(agent.options.dataDir, 'identity.json'), 'utf8'),
        ) as { natsUrl: string };
        expect(parseNatsUrl(identity.natsUrl).servers).toHaveLength(cluster.nodes.length);
      }

      const handle = await orchestrator.start(tinySpec(`nats-cluster-${Date.now()}`));
      // Mid-rollout: the canaries have been asked to fetch and benchmark the candidates.
      const rollingOut = await statusWhen(
        handle,
        (s) =>
          (s.phase === 'rolling_out' && s.classes.some((c) => c.phase === 'benchmarking')) ||
          FINISHED_PHASES.includes(s.phase),
        600_000,
      );
      expect(rollingOut.phase, rollingOut.detail).toBe('rolling_out');

      // The node that leads the release bucket of the devices' class, while they fetch from it.
      const jsm = await jetstreamManager(nats);
      const modelsStream = objectStream(releaseBucket(agents[0]!.hardwareClass!));
      const leader = (await jsm.streams.info(modelsStream)).cluster?.leader ?? '';
      const victim = cluster.indexOf(leader);
      const metaLeader = await cluster.waitForMetaLeader();
      await cluster.kill(victim);
      console.log(
        `[nats-cluster] SIGKILLed ${leader} (leader of ${modelsStream}` +
          `${metaLeader === leader ? ' and of the JetStream meta group' : ''}) while canaries benchmark`,
      );

      const status: RolloutStatus = await handle.result();
      const classes = status.classes.map(
        (c) => `${c.hardwareClass} ${c.phase}: ${c.reason} (waves: ${JSON.stringify(c.waves)})`,
      );
      expect(status.phase, [status.detail, status.error ?? '', ...classes].join('\n')).toBe(
        'succeeded',
      );

      for (const agent of agents) {
        const cls = status.classes.find((c) => c.hardwareClass === agent.hardwareClass);
        expect(cls, `class ${agent.hardwareClass} in the result`).toBeDefined();
        const chosen = cls!.chosen!;
        expect(chosen, cls!.reason).toBeTruthy();
        const failedCheck = cls!.candidates
          .filter((c) => !PASSED.has(c.verdict))
          .map((c) => c.variant);
        expect(failedCheck).not.toContain(chosen.variant);
        const served = await servedModel(agent.inferenceUrl!);
        // The chosen variant, or the device's earlier model: these devices had none (404).
        if (typeof served === 'number') {
          expect(served).toBe(404);
          expect(agent.status.models?.activeModel).toBeUndefined();
        } else {
          expect(served).toMatchObject({ variant: chosen.variant, sha256: chosen.sha256 });
          expect(failedCheck).not.toContain(served.variant);
          // What the device itself says it runs.
          expect(agent.status.models?.activeModel?.sha256).toBe(served.sha256);
        }
      }
      const servedChosen = await Promise.all(agents.map((a) => servedModel(a.inferenceUrl!)));
      expect(servedChosen.filter((s) => typeof s !== 'number').length).toBeGreaterThan(0);

      const streams = await edgeforgeStreams(nats);
      expect(streams.map((s) => s.config.name)).toContain(modelsStream);
      for (const stream of streams) {
        expect(stream.config.num_replicas, stream.config.name).toBe(REPLICAS);
      }

      // Back on its storage, the node catches up: every replica of every bucket is current.
      await cluster.restart(victim);
      await eventually(async () => {
        for (const stream of await edgeforgeStreams(nats)) {
          const peers = stream.cluster?.replicas ?? [];
          expect(peers, stream.config.name).toHaveLength(REPLICAS - 1);
          for (const peer of peers)
            expect(peer.current, `${stream.config.name} ${peer.name}`).toBe(true);
        }
      }, 60_000);
    },
  );
});
