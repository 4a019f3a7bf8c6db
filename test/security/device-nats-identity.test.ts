import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createUser } from '@nats-io/nkeys';
import { describe, expect, it, onTestFinished } from 'vitest';
import { cohortOf } from '../../common/cohorts.js';
import {
  deviceDesiredKey,
  deviceInboxPrefix,
  KV_BUCKETS,
  kvStream,
  kvSubject,
  OBJECT_BUCKETS,
  releaseBucket,
  trackKey,
} from '../../common/names.js';
import type { EdgeAgent } from '../../agent/index.js';
import { IDENTITY_FILE } from '../../agent/identity/identity-store.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { ADMIN_TOKEN, rawClients, startTestControlPlane } from '../helpers/control-plane.js';
import { TestOrchestrator } from '../helpers/distribution.js';
import { testNats, testStack } from '../helpers/stack.js';

const servers = () => testStack().agentNatsUrl;

/** A device's credential, as its agent stored it. */
async function credentialOf(agent: EdgeAgent): Promise<string> {
  const file = join(agent.options.dataDir, IDENTITY_FILE);
  return (JSON.parse(await readFile(file, 'utf8')) as { credential: string }).credential;
}

/**
 * A NATS connection made as an outside client holding a device's credential would make it (not
 * through the agent's code), collecting the server's permission errors.
 */
async function connectAs(deviceId: string, token: string) {
  const nc = await connect({
    servers: servers(),
    token,
    inboxPrefix: deviceInboxPrefix(deviceId),
    maxReconnectAttempts: 0,
  });
  onTestFinished(() => nc.close().catch(() => {}));
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error') errors.push(String(s.error?.message));
    }
  })();
  return { nc, errors };
}

const directGet = (nc: NatsConnection, key: string) =>
  nc.request(
    `$JS.API.DIRECT.GET.${kvStream(KV_BUCKETS.desiredState)}.${kvSubject(KV_BUCKETS.desiredState, key)}`,
    undefined,
    { timeout: 2_000 },
  );

/** What became of a subscription: the server's refusal, or 'still open'. */
async function subscriptionOutcome(nc: NatsConnection, subject: string): Promise<string> {
  const sub = nc.subscribe(subject);
  await nc.flush();
  const closed = await Promise.race([
    sub.closed,
    new Promise((resolve) => setTimeout(() => resolve('still open'), 2_000)),
  ]);
  return closed instanceof Error ? closed.message : String(closed);
}

describe('each device connects to NATS as itself, with its own rights only', () => {
  it('reads its own entries and its class’s models, nothing of another device or class, and writes nothing', async () => {
    const cp = await startTestControlPlane();
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    const a = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    const b = await startTestAgent(cp.address, { cpuinfo: 'intel-celeron-j1900' });
    const [aId, bId] = [a.deviceId!, b.deviceId!];
    const [aClass, bClass] = [a.hardwareClass!, b.hardwareClass!];
    expect(aClass).not.toBe(bClass);

    await orchestrator.put(aId, 'a-own');
    await orchestrator.put(bId, 'b-own');
    const aTrack = trackKey(aClass, cohortOf(aId));
    const otherCohort = trackKey(aClass, (cohortOf(aId) + 1) % 100);
    await orchestrator.desired.put(aTrack, 'a-track');
    await orchestrator.desired.put(otherCohort, 'other-cohort');
    await orchestrator.desired.put(trackKey(bClass, cohortOf(bId)), 'b-track');
    const blob = async (bucket: string, name: string, byte: number) =>
      (await orchestrator.bucket(bucket)).putBlob({ name }, new Uint8Array([byte]));
    await blob(releaseBucket(aClass), 'a.onnx', 1);
    await blob(releaseBucket(bClass), 'b.onnx', 2);
    // What the gpu worker keeps centrally: a teacher, logits, checkpoints.
    await blob(OBJECT_BUCKETS.models, 'r-1/teacher/model.pt', 3);

    const { nc, errors } = await connectAs(aId, await credentialOf(a));
    // Its own entry and its track, through per-key direct gets.
    expect((await directGet(nc, deviceDesiredKey(aId))).string()).toBe('a-own');
    expect((await directGet(nc, aTrack)).string()).toBe('a-track');
    // Another device's entry, another cohort's or class's track: refused by the server.
    for (const key of [deviceDesiredKey(bId), otherCohort, trackKey(bClass, cohortOf(bId))]) {
      await expect(directGet(nc, key)).rejects.toThrow(/permission/i);
    }
    // Its class's released model; not another class's, not the central models bucket.
    // As the agent opens it: no account info, deliveries to its own inbox.
    const objm = new Objm(
      jetstream(nc, { checkAPI: false, watcherPrefix: deviceInboxPrefix(aId) }),
    );
    const own = await objm.open(releaseBucket(aClass));
    expect([...((await own.getBlob('a.onnx')) ?? [])]).toEqual([1]);
    await expect(objm.open(releaseBucket(bClass))).rejects.toThrow(/permission/i);
    await expect(objm.open(OBJECT_BUCKETS.models)).rejects.toThrow(/permission/i);

    // No subscription beyond its inbox and its two keys.
    for (const subject of [
      '_INBOX.>',
      `${deviceInboxPrefix(bId)}.>`,
      kvSubject(KV_BUCKETS.desiredState, deviceDesiredKey(bId)),
      kvSubject(KV_BUCKETS.desiredState, '>'),
      '$KV.edgeforge_devices.>',
      '>',
    ]) {
      expect(await subscriptionOutcome(nc, subject)).toMatch(/permission/i);
    }
    expect(
      await subscriptionOutcome(nc, kvSubject(KV_BUCKETS.desiredState, deviceDesiredKey(aId))),
    ).toBe('still open');

    // No writes and no JetStream API beyond reading: the server refuses every publish.
    const attempts = [
      kvSubject(KV_BUCKETS.desiredState, deviceDesiredKey(aId)),
      kvSubject(KV_BUCKETS.benchmarks, `r-1.fp32.${aId}`),
      `$O.${releaseBucket(aClass)}.C.evil`,
      `$JS.API.STREAM.INFO.${kvStream(KV_BUCKETS.devices)}`,
      `$JS.API.STREAM.MSG.GET.${kvStream(KV_BUCKETS.desiredState)}`,
      `$JS.API.CONSUMER.CREATE.${kvStream(KV_BUCKETS.desiredState)}`,
      `$JS.API.STREAM.DELETE.${kvStream(KV_BUCKETS.desiredState)}`,
      `${deviceInboxPrefix(bId)}.x`,
      '$SYS.REQ.USER.AUTH',
    ];
    for (const subject of attempts) nc.publish(subject, 'evil');
    await eventually(() => {
      for (const subject of attempts) expect(errors.join('\n')).toContain(subject);
    }, 10_000);
    // Nothing of it arrived.
    expect((await orchestrator.desired.get(deviceDesiredKey(aId)))?.string()).toBe('a-own');
  });

  it('lets nobody in without a valid device credential', async () => {
    const cp = await startTestControlPlane();
    const a = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    const credential = await credentialOf(a);
    const [prefix, claims, mac] = credential.split('.');
    const otherClaims = Buffer.from(claims!, 'base64url')
      .toString()
      .replace(a.deviceId!, 'd-someone-else');
    for (const token of [
      undefined,
      'not-a-credential',
      `${prefix}.${Buffer.from(otherClaims).toString('base64url')}.${mac}`,
      `${credential.slice(0, -2)}xx`,
    ]) {
      await expect(
        connect({ servers: servers(), ...(token ? { token } : {}), maxReconnectAttempts: 0 }),
      ).rejects.toThrow(/authorization/i);
    }
  });

  it('cuts a revoked device off NATS at once, and does not let it back in', async () => {
    const cp = await startTestControlPlane();
    const a = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    const credential = await credentialOf(a);
    const { nc } = await connectAs(a.deviceId!, credential);
    const closed = nc.closed();
    await rawClients(cp.address).revokeDevice(
      { deviceId: a.deviceId!, reason: 'stolen' },
      ADMIN_TOKEN,
    );
    // Kicked by the control plane, not left connected until its user JWT expires...
    await closed;
    expect(nc.isClosed()).toBe(true);
    // ...and its credential opens NATS no more.
    await expect(
      connect({ servers: servers(), token: credential, maxReconnectAttempts: 0 }),
    ).rejects.toThrow(/authorization/i);
  });
});

describe('a control plane that cannot give devices their own identity does not start', () => {
  it('refuses an advertised NATS URL that carries credentials, and an issuer that is no account key', async () => {
    const withPassword = testStack().natsUrl;
    await expect(startTestControlPlane({ advertisedNatsUrl: withPassword })).rejects.toThrow(
      /carries credentials: every device would connect with them/,
    );
    const system = await testNats('system', testStack().systemNatsUrl);
    await expect(
      startTestControlPlane({ natsAuth: { issuerSeed: 'not-a-seed', system } }),
    ).rejects.toThrow(/issuer seed does not parse/);
    // A user seed signs JWTs the server would refuse: every device locked out, silently.
    const userSeed = new TextDecoder().decode(createUser().getSeed());
    await expect(
      startTestControlPlane({ natsAuth: { issuerSeed: userSeed, system } }),
    ).rejects.toThrow(/not an account key/);
  });
});
