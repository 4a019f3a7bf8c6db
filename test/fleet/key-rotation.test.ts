import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Client,
  credentials as grpcCredentials,
  Server,
  ServerCredentials,
  status,
  type Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { pino } from 'pino';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { callUnary, type UnaryMethod } from '../../common/grpc-unary.js';
import {
  generateManifestKeyPair,
  loadManifestKeyPair,
  signManifest,
} from '../../common/manifest.js';
import { signManifestKeyRotation } from '../../common/manifest-key-rotation.js';
import { currentManifestSigningKey } from '../../common/manifest-key-set.js';
import type { DeviceIdentity } from '../../agent/identity/identity-store.js';
import { AdminServiceService } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import {
  DeviceState,
  FleetServiceService,
  type FleetServiceServer,
  type HeartbeatResponse,
  type ManifestKeyRotation,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { runCli } from '../helpers/cli.js';
import {
  ADMIN_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { TestOrchestrator } from '../helpers/distribution.js';
import { testManifest } from '../helpers/manifests.js';
import { hotFeatureClassifier } from '../helpers/onnx-models.js';
import { testNats } from '../helpers/stack.js';

/** The AdminService key rotation calls, with the admin credential. */
function adminCalls(address: string, credential = ADMIN_TOKEN) {
  const client = new Client(address, grpcCredentials.createInsecure());
  onTestFinished(() => client.close());
  const call =
    <Req, Res>(method: UnaryMethod<Req, Res>) =>
    (request: Req): Promise<Res> =>
      callUnary(client, method, request, { credential });
  return {
    rotateManifestKey: call(AdminServiceService.rotateManifestKey),
    rotateCredentialKey: call(AdminServiceService.rotateCredentialKey),
  };
}

async function identityOf(agent: { options: { dataDir: string } }): Promise<DeviceIdentity> {
  return JSON.parse(
    await readFile(join(agent.options.dataDir, 'identity.json'), 'utf8'),
  ) as DeviceIdentity;
}

/** A pino logger whose lines the test can read. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info', base: { component: 'agent' } },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

/**
 * A man in the middle between agents and the control plane: forwards every FleetService call
 * as it is, and lets the test rewrite heartbeat answers (an attacker on an unencrypted link, or
 * a compromised proxy, injecting a rotation statement).
 */
async function fleetProxy(
  upstream: string,
  tamper: (response: HeartbeatResponse) => HeartbeatResponse,
): Promise<string> {
  const client = new Client(upstream, grpcCredentials.createInsecure());
  const forward =
    <Req, Res>(method: UnaryMethod<Req, Res>, rewrite: (res: Res) => Res = (r) => r) =>
    (
      call: { request: Req; metadata: Metadata },
      callback: (err: ServiceError | null, res?: Res) => void,
    ) => {
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        call.request,
        call.metadata,
        { deadline: Date.now() + 10_000 },
        (err: ServiceError | null, res?: Res) =>
          err ? callback(err) : callback(null, rewrite(res!)),
      );
    };
  const server = new Server();
  const handlers = {
    enroll: forward(FleetServiceService.enroll),
    heartbeat: forward(FleetServiceService.heartbeat, tamper),
    reportBenchmark: forward(FleetServiceService.reportBenchmark),
    reportStatus: forward(FleetServiceService.reportStatus),
  } as unknown as FleetServiceServer;
  server.addService(FleetServiceService, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  onTestFinished(() => {
    server.forceShutdown();
    client.close();
  });
  return `127.0.0.1:${port}`;
}

describe('rotating keys without enrolling devices again', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('RotateManifestKey: agents pin the new key and verify manifests signed with it', async () => {
    const cp = await startTestControlPlane();
    const admin = adminCalls(cp.address);
    const agent = await startTestAgent(cp.address, { cpuinfo: 'aws-graviton3' });
    const deviceId = agent.deviceId!;
    const hardwareClasses = [agent.hardwareClass!];
    const before = await identityOf(agent);
    expect(before.manifestKeyVersion).toBe(1);

    const rotatedAt = Date.now();
    const rotated = await admin.rotateManifestKey({ graceHours: 0, retirePreviousKey: false });
    expect(rotated.version).toBe(2);
    expect(rotated.publicKey.toString('base64')).not.toBe(before.manifestPublicKey);
    // The default grace: 30 days.
    expect(rotated.previousKeyValidUntil!.getTime() - rotatedAt).toBeGreaterThan(
      720 * 3600_000 - 60_000,
    );

    // Its next heartbeat carries the statement; the agent checks it and pins the new key.
    const after = await eventually(async () => {
      const identity = await identityOf(agent);
      expect(identity.manifestKeyVersion).toBe(2);
      return identity;
    }, 10_000);
    expect(after.manifestPublicKey).toBe(rotated.publicKey.toString('base64'));
    expect(after.previousManifestKeys).toEqual([
      {
        version: 1,
        publicKey: before.manifestPublicKey,
        validUntil: rotated.previousKeyValidUntil!.toISOString(),
      },
    ]);
    expect(after.credential).toBe(before.credential);
    expect(agent.status.enrollments).toBe(1);

    // The orchestrator (which reads the key set beside manifest-signing.pem, as the worker does)
    // signs with the new key; the agent verifies and runs what it signed.
    const signer = await currentManifestSigningKey(join(cp.dataDir, 'manifest-signing.pem'))();
    expect(signer.publicKeyRaw.equals(rotated.publicKey)).toBe(true);
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    expect(orchestrator.key.publicKeyRaw.equals(rotated.publicKey)).toBe(true);
    const model = hotFeatureClassifier();
    const manifest = testManifest({ model, version: 2, hardwareClasses });
    await orchestrator.upload(model, manifest.model);
    await orchestrator.run(deviceId, 'r-new-key', signManifest(manifest, signer.privateKey));
    await eventually(() =>
      expect(cp.registry.get(deviceId)?.lastStatus).toMatchObject({
        event: 'STATUS_EVENT_ACTIVATED',
        rolloutId: 'r-new-key',
      }),
    );

    // A device that enrols now pins version 2 at once, and learns the previous key from the
    // chain (manifests signed before the rotation are still on the tracks).
    const late = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    await eventually(async () => {
      const identity = await identityOf(late);
      expect(identity.manifestKeyVersion).toBe(2);
      expect(identity.manifestPublicKey).toBe(rotated.publicKey.toString('base64'));
      expect(identity.previousManifestKeys?.map((k) => k.version)).toEqual([1]);
    }, 10_000);

    // The key set is durable: a restarted control plane hands out the same chain.
    const again = await cp.restart();
    const beat = await rawClients(again.address).heartbeat(
      { state: DeviceState.DEVICE_STATE_IDLE },
      after.credential,
    );
    expect(beat.manifestKeyRotations).toHaveLength(1);
    expect(beat.manifestKeyRotations[0]!.statementJson).toBe(rotated.rotation!.statementJson);
  });

  it('a forged rotation statement is refused and logged with the device id; the pin stays', async () => {
    const cp = await startTestControlPlane();
    const attacker = loadManifestKeyPair(generateManifestKeyPair().privateKeyPem);
    const realKey = loadManifestKeyPair(
      await readFile(join(cp.dataDir, 'manifest-signing.pem'), 'utf8'),
    );
    // Names the real key as its predecessor, but only the attacker's key signed it.
    const forgedStatement = signManifestKeyRotation(
      {
        version: 2,
        publicKey: attacker.publicKeyRaw.toString('base64'),
        previousVersion: 1,
        previousPublicKey: realKey.publicKeyRaw.toString('base64'),
        issuedAt: new Date().toISOString(),
        previousKeyValidUntil: new Date().toISOString(),
      },
      attacker.privateKey,
      attacker.privateKey,
    );
    const forged: ManifestKeyRotation = {
      statementJson: forgedStatement.statementJson,
      previousKeySignature: Buffer.from(forgedStatement.previousKeySignature),
      newKeySignature: Buffer.from(forgedStatement.newKeySignature),
    };
    let injected = 0;
    const proxy = await fleetProxy(cp.address, (response) => {
      injected += 1;
      return { ...response, manifestKeyRotations: [forged, ...response.manifestKeyRotations] };
    });
    const { logger, lines } = capturedLogger();
    const agent = await startTestAgent(proxy, { cpuinfo: 'aws-graviton3' }, { logger });
    const deviceId = agent.deviceId!;
    const before = await identityOf(agent);

    await eventually(() => expect(injected).toBeGreaterThanOrEqual(3), 10_000);
    const refusals = lines.filter((l) => /refused a manifest key rotation/.test(String(l.msg)));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({
      deviceId,
      reason: 'not_signed_by_pinned_key',
      keyVersion: 2,
      pinnedKeyVersion: 1,
    });
    expect(await identityOf(agent)).toEqual(before);

    // A model signed with the attacker's key is refused like any foreign signature.
    const orchestrator = await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    const model = hotFeatureClassifier();
    const manifest = testManifest({ model, version: 2, hardwareClasses: [agent.hardwareClass!] });
    await orchestrator.upload(model, manifest.model);
    await orchestrator.run(deviceId, 'r-forged', signManifest(manifest, attacker.privateKey));
    await eventually(() =>
      expect(cp.registry.get(deviceId)?.lastStatus).toMatchObject({
        event: 'STATUS_EVENT_REFUSED',
        rolloutId: 'r-forged',
        detail: expect.stringMatching(/^bad_signature/) as string,
      }),
    );

    // The real rotation (through the CLI) still gets through beside the forged statement.
    const cli = await runCli(['keys', 'rotate-manifest', '--grace-hours', '2'], {
      EDGEFORGE_CONTROL_PLANE: cp.address,
      EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/manifest signing key is now version 2 /);
    const rotated = loadManifestKeyPair(
      await readFile(join(cp.dataDir, 'manifest-signing.pem'), 'utf8'),
    );
    await eventually(async () => {
      const identity = await identityOf(agent);
      expect(identity.manifestKeyVersion).toBe(2);
      expect(identity.manifestPublicKey).toBe(rotated.publicKeyRaw.toString('base64'));
    }, 10_000);
    expect(agent.status.enrollments).toBe(1);
  });

  it('RotateCredentialKey: devices keep working and renew onto the new key', async () => {
    const cp = await startTestControlPlane();
    const agent = await startTestAgent(cp.address, { cpuinfo: 'aws-graviton3' });
    await eventually(() => expect(agent.status.heartbeatsOk).toBeGreaterThanOrEqual(1));
    const old = (await identityOf(agent)).credential;
    expect(old).toMatch(/^efd1\./);

    // Only the admin credential rotates keys.
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => 'OK',
        (err: ServiceError) => status[err.code],
      );
    expect(await refusal(adminCalls(cp.address, old).rotateCredentialKey({}))).toBe(
      'PERMISSION_DENIED',
    );
    expect(
      await refusal(
        adminCalls(cp.address, 'not-the-admin-token').rotateManifestKey({
          graceHours: 0,
          retirePreviousKey: false,
        }),
      ),
    ).toBe('UNAUTHENTICATED');

    const cli = await runCli(['keys', 'rotate-credential'], {
      EDGEFORGE_CONTROL_PLANE: cp.address,
      EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(
      /^device credentials are now signed with key 1; still accepted: key 0 until \d{4}-/,
    );

    // Its next heartbeat (with the old credential, still accepted) brings one under key 1.
    const renewed = await eventually(async () => {
      const identity = await identityOf(agent);
      expect(identity.credential).toMatch(/^efd2\.1\./);
      return identity.credential;
    }, 10_000);
    const beats = agent.status.heartbeatsOk;
    await eventually(() => expect(agent.status.heartbeatsOk).toBeGreaterThan(beats + 1), 10_000);
    expect(agent.status.enrollments).toBe(1);
    expect(agent.status.heartbeatsFailed).toBe(0);

    // Both stay accepted across a restart (the versioned key set was written), the old one
    // until its own expiry; a heartbeat with it is handed a new-key credential.
    const again = await cp.restart();
    const api = rawClients(again.address);
    const withOld = await api.heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, old);
    expect(withOld.renewedCredential).toMatch(/^efd2\.1\./);
    const withNew = await api.heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, renewed);
    expect(withNew.renewedCredential).toBe('');
  });
});
