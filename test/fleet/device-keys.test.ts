import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials as grpcCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { callUnary, type UnaryMethod } from '../../common/grpc-unary.js';
import { profileToProto } from '../../common/fleet-api.js';
import { DeviceKey, loadOrCreateDeviceKey } from '../../agent/identity/device-key.js';
import { AdminServiceService } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import { DeviceState, type EnrollRequest } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import {
  ADMIN_TOKEN,
  ENROLLMENT_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { runCli } from '../helpers/cli.js';
import { fixtureProfile } from '../helpers/profiles.js';
import { testNats } from '../helpers/stack.js';

// Device keys: a device proves at Enroll that it holds the key its name was enrolled with, so
// the fleet enrollment token alone cannot take over an enrolled device. Requests are signed with
// the agent's own code (agent/identity/device-key.ts), against the real control plane.

async function refusal(promise: Promise<unknown>): Promise<ServiceError> {
  return (await promise.then(
    () => {
      throw new Error('expected the call to be refused, but it succeeded');
    },
    (e: unknown) => e,
  )) as ServiceError;
}

async function expectStatus(promise: Promise<unknown>, code: status, details?: RegExp) {
  const err = await refusal(promise);
  expect(status[err.code], err.details).toBe(status[code]);
  if (details) expect(err.details).toMatch(details);
  return err;
}

/** A request as the agent sends it: signed with `key` for this name and token, now. */
function signedEnroll(
  deviceName: string,
  key: DeviceKey,
  enrollmentToken = ENROLLMENT_TOKEN,
  nowMs = Date.now(),
): EnrollRequest {
  return {
    enrollmentToken,
    deviceName,
    profile: profileToProto(fixtureProfile('raspberry-pi-4')),
    agentVersion: '0.1.0',
    ...key.enrollProof({ deviceName, enrollmentToken }, nowMs),
  };
}

/** The device-key AdminService calls (rawClients has the older ones). */
function keyAdmin(address: string) {
  const client = new Client(address, grpcCredentials.createInsecure());
  onTestFinished(() => client.close());
  const call =
    <Req, Res>(method: UnaryMethod<Req, Res>) =>
    (request: Req, credential: string | undefined = ADMIN_TOKEN): Promise<Res> =>
      callUnary(client, method, request, { credential });
  return {
    listPending: call(AdminServiceService.listPendingEnrollments),
    approve: call(AdminServiceService.approvePendingEnrollment),
    reject: call(AdminServiceService.rejectPendingEnrollment),
    createToken: call(AdminServiceService.createEnrollmentToken),
  };
}

/** The request as an agent from before device keys sends it. */
function withoutKey(request: EnrollRequest): EnrollRequest {
  const keyless = { ...request };
  delete keyless.devicePublicKey;
  delete keyless.keySignature;
  delete keyless.signedAtUnixMs;
  return keyless;
}

const idle = { state: DeviceState.DEVICE_STATE_IDLE };
const PENDING = /an operator must approve this device key .*edgeforge fleet approve (\S+) /;

/** The pending id in an Enroll refusal. */
function pendingIdOf(err: ServiceError): string {
  const id = PENDING.exec(err.details)?.[1];
  expect(id, err.details).toBeDefined();
  return id!;
}

describe('device keys', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('re-enrols with its own key; another key with the stolen fleet token takes nothing over', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const admin = keyAdmin(cp.address);
    const name = `device-${randomUUID()}`;
    const owner = DeviceKey.generate();

    const first = await api.enroll(signedEnroll(name, owner));
    expect(cp.registry.get(first.deviceId)?.publicKey).toBe(owner.publicKeyRaw.toString('base64'));
    // A lost credential: the same key enrols again, the same device.
    const again = await api.enroll(signedEnroll(name, owner));
    expect(again.deviceId).toBe(first.deviceId);
    await api.heartbeat(idle, again.deviceCredential);
    const before = structuredClone(cp.registry.get(first.deviceId));

    const thief = DeviceKey.generate();
    const err = await expectStatus(
      api.enroll(signedEnroll(name, thief)),
      status.FAILED_PRECONDITION,
      new RegExp(
        `device ${first.deviceId} \\(${name}\\) is enrolled with another device key ` +
          `\\(sha256 ${owner.fingerprint}\\); an operator must approve this device key ` +
          `\\(sha256 ${thief.fingerprint}\\) before it enrols: edgeforge fleet approve `,
      ),
    );
    const pendingId = pendingIdOf(err);
    // Nothing changed: the record, and the owner's credentials.
    expect(cp.registry.get(first.deviceId)).toEqual(before);
    await api.heartbeat(idle, first.deviceCredential);
    await api.heartbeat(idle, again.deviceCredential);
    const afterBeats = structuredClone(cp.registry.get(first.deviceId));
    expect(afterBeats?.heartbeatCount).toBe(before!.heartbeatCount + 2);

    // Asking again with the same key is the same request; another key replaces it (one per name).
    expect(pendingIdOf(await refusal(api.enroll(signedEnroll(name, thief))))).toBe(pendingId);
    const thief2 = DeviceKey.generate();
    const replacedBy = pendingIdOf(await refusal(api.enroll(signedEnroll(name, thief2))));
    expect(replacedBy).not.toBe(pendingId);
    const { pending } = await admin.listPending({});
    expect(pending.filter((p) => p.deviceId === first.deviceId)).toEqual([
      expect.objectContaining({
        pendingId: replacedBy,
        deviceName: name,
        keyFingerprint: thief2.fingerprint,
        currentKeyFingerprint: owner.fingerprint,
      }),
    ]);
    await expectStatus(admin.approve({ pendingId }), status.NOT_FOUND, /replaced it/);
    expect(cp.registry.get(first.deviceId)).toEqual(afterBeats);

    // A request without a key cannot enrol a name that has one.
    const keyless = withoutKey(signedEnroll(name, owner));
    await expectStatus(
      api.enroll(keyless),
      status.FAILED_PRECONDITION,
      /enrols with a device key .* this request has none \(device_public_key\)/,
    );
    expect(cp.registry.get(first.deviceId)).toEqual(afterBeats);
  });

  it('approving gives the device the new key, voids older credentials, and survives a restart', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const name = `device-${randomUUID()}`;
    const oldKey = DeviceKey.generate();
    const newKey = DeviceKey.generate();
    const old = await api.enroll(signedEnroll(name, oldKey));
    const pendingId = pendingIdOf(await refusal(api.enroll(signedEnroll(name, newKey))));

    // Pending enrolments are in NATS, not in the process.
    await cp.stop();
    const restarted = await cp.restart();
    const api2 = rawClients(restarted.address);
    const admin2 = keyAdmin(restarted.address);
    const listed = (await admin2.listPending({})).pending.find((p) => p.pendingId === pendingId);
    expect(listed).toMatchObject({ deviceId: old.deviceId, keyFingerprint: newKey.fingerprint });

    const { device, approved } = await admin2.approve({ pendingId });
    expect(device?.deviceId).toBe(old.deviceId);
    expect(approved).toMatchObject({ pendingId, currentKeyFingerprint: oldKey.fingerprint });
    expect(restarted.registry.get(old.deviceId)?.publicKey).toBe(
      newKey.publicKeyRaw.toString('base64'),
    );
    await expectStatus(
      api2.heartbeat(idle, old.deviceCredential),
      status.UNAUTHENTICATED,
      /got another device key at .*: credentials issued before then are void/,
    );
    // The approved device enrols with its key and works; the approval is used up.
    const approvedDevice = await api2.enroll(signedEnroll(name, newKey));
    expect(approvedDevice.deviceId).toBe(old.deviceId);
    await api2.heartbeat(idle, approvedDevice.deviceCredential);
    await expectStatus(admin2.approve({ pendingId }), status.NOT_FOUND);
    expect((await admin2.listPending({})).pending.map((p) => p.pendingId)).not.toContain(pendingId);
    // Now the old key is the stranger.
    await expectStatus(
      api2.enroll(signedEnroll(name, oldKey)),
      status.FAILED_PRECONDITION,
      PENDING,
    );
  });

  it('rejecting drops the pending enrolment; the device keeps its key', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const admin = keyAdmin(cp.address);
    const name = `device-${randomUUID()}`;
    const owner = DeviceKey.generate();
    const { deviceId, deviceCredential } = await api.enroll(signedEnroll(name, owner));
    const stranger = DeviceKey.generate();
    const pendingId = pendingIdOf(await refusal(api.enroll(signedEnroll(name, stranger))));

    await admin.reject({ pendingId });
    expect((await admin.listPending({})).pending.map((p) => p.pendingId)).not.toContain(pendingId);
    await expectStatus(admin.reject({ pendingId }), status.NOT_FOUND, /no pending enrolment/);
    await expectStatus(admin.approve({ pendingId }), status.NOT_FOUND, /no pending enrolment/);
    expect(cp.registry.get(deviceId)?.publicKey).toBe(owner.publicKeyRaw.toString('base64'));
    await api.heartbeat(idle, deviceCredential);
    await expectStatus(
      admin.approve({ pendingId: 'not an id' }),
      status.INVALID_ARGUMENT,
      /^pending_id: /,
    );
    // Asking again is a new request.
    const next = pendingIdOf(await refusal(api.enroll(signedEnroll(name, stranger))));
    expect(next).not.toBe(pendingId);
  });

  it('one-time tokens: once, for their name only, until they expire; they replace a key', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const admin = keyAdmin(cp.address);
    const name = `device-${randomUUID()}`;
    const key = DeviceKey.generate();

    const { enrollmentToken, deviceId, expiresAt } = await admin.createToken({
      deviceName: name,
      ttlSeconds: 600,
    });
    expect(enrollmentToken).toMatch(/^efo1\./);
    expect(expiresAt!.getTime()).toBeGreaterThan(Date.now() + 590_000);
    // Another name, or no key: refused, and the token is not used up by it.
    await expectStatus(
      api.enroll(signedEnroll(`other-${randomUUID()}`, key, enrollmentToken)),
      status.UNAUTHENTICATED,
      /one-time token for another device name/,
    );
    const keyless = withoutKey(signedEnroll(name, key, enrollmentToken));
    await expectStatus(api.enroll(keyless), status.UNAUTHENTICATED, /enrollment_token/);
    const enrolled = await api.enroll(signedEnroll(name, key, enrollmentToken));
    expect(enrolled.deviceId).toBe(deviceId);
    await api.heartbeat(idle, enrolled.deviceCredential);
    await expectStatus(
      api.enroll(signedEnroll(name, key, enrollmentToken)),
      status.UNAUTHENTICATED,
      /one-time token that was used at .*edgeforge fleet token/,
    );

    // For an enrolled name, a token is the operator's approval given up front.
    const newKey = DeviceKey.generate();
    const replacing = await admin.createToken({ deviceName: name, ttlSeconds: 0 });
    const replaced = await api.enroll(signedEnroll(name, newKey, replacing.enrollmentToken));
    expect(replaced.deviceId).toBe(deviceId);
    expect(cp.registry.get(deviceId)?.publicKey).toBe(newKey.publicKeyRaw.toString('base64'));
    await api.heartbeat(idle, replaced.deviceCredential);
    await expectStatus(api.heartbeat(idle, enrolled.deviceCredential), status.UNAUTHENTICATED);
    await expectStatus(api.enroll(signedEnroll(name, key)), status.FAILED_PRECONDITION, PENDING);

    // Expired.
    const short = await admin.createToken({ deviceName: name, ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1_200));
    await expectStatus(
      api.enroll(signedEnroll(name, newKey, short.enrollmentToken)),
      status.UNAUTHENTICATED,
      /one-time token that expired at/,
    );

    // Two enrolments racing with one token: exactly one gets in.
    const racing = await admin.createToken({ deviceName: name, ttlSeconds: 60 });
    const results = await Promise.allSettled(
      [DeviceKey.generate(), DeviceKey.generate()].map((k) =>
        api.enroll(signedEnroll(name, k, racing.enrollmentToken)),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect((lost?.reason as ServiceError).code).toBe(status.UNAUTHENTICATED);
    expect((lost?.reason as ServiceError).details).toMatch(/was used at/);

    // A revoked device stays out, token or not.
    const beforeRevoking = await admin.createToken({ deviceName: name, ttlSeconds: 60 });
    await api.revokeDevice({ deviceId, reason: 'stolen' }, ADMIN_TOKEN);
    await expectStatus(
      api.enroll(signedEnroll(name, DeviceKey.generate(), beforeRevoking.enrollmentToken)),
      status.PERMISSION_DENIED,
      /was revoked by an operator .*must delete it/,
    );
    await expectStatus(
      admin.createToken({ deviceName: name, ttlSeconds: 60 }),
      status.FAILED_PRECONDITION,
      /was revoked by an operator.*a token would not let it in/,
    );
  });

  it('takes the admin credential only for pending enrolments and tokens', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const admin = keyAdmin(cp.address);
    const name = `device-${randomUUID()}`;
    const { deviceCredential } = await api.enroll(signedEnroll(name, DeviceKey.generate()));
    const calls = [
      (c?: string) => admin.listPending({}, c),
      (c?: string) => admin.approve({ pendingId: 'd-1.0011223344556677' }, c),
      (c?: string) => admin.reject({ pendingId: 'd-1.0011223344556677' }, c),
      (c?: string) => admin.createToken({ deviceName: name, ttlSeconds: 60 }, c),
    ];
    for (const call of calls) {
      await expectStatus(call(''), status.UNAUTHENTICATED, /missing "authorization/);
      await expectStatus(call(ENROLLMENT_TOKEN), status.UNAUTHENTICATED);
      await expectStatus(call(deviceCredential), status.PERMISSION_DENIED, /device credential/);
    }
  });

  it('refuses bad proofs as INVALID_ARGUMENT naming the field, writing nothing', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const name = `device-${randomUUID()}`;
    const key = DeviceKey.generate();
    const accepted = signedEnroll(name, key);
    const { deviceId } = await api.enroll(accepted);
    const before = structuredClone(cp.registry.get(deviceId));
    const other = DeviceKey.generate();
    const cases: [string, EnrollRequest, RegExp][] = [
      [
        'a 16-byte key',
        { ...signedEnroll(name, key), devicePublicKey: Buffer.alloc(16, 7) },
        /^device_public_key: is 16 bytes; expected a raw 32-byte ed25519 public key/,
      ],
      [
        "another key's signature",
        { ...signedEnroll(name, key), keySignature: signedEnroll(name, other).keySignature },
        /^key_signature: does not verify with device_public_key/,
      ],
      [
        'a 10-byte signature',
        { ...signedEnroll(name, key), keySignature: Buffer.alloc(10) },
        /^key_signature: is 10 bytes; expected a 64-byte ed25519 signature/,
      ],
      [
        'a proof for another name',
        { ...signedEnroll(`other-${randomUUID()}`, key), deviceName: name },
        /^key_signature: does not verify/,
      ],
      [
        'a proof signed 10 minutes ago',
        signedEnroll(name, key, ENROLLMENT_TOKEN, Date.now() - 600_000),
        /^signed_at_unix_ms: is .* behind the control plane's clock/,
      ],
      [
        'a time above 2^53 (as the decoder sees it)',
        { ...signedEnroll(name, key), signedAtUnixMs: (2n ** 60n) as unknown as number },
        /^signed_at_unix_ms: is 1152921504606846976, above 2\^53-1/,
      ],
      [
        'the accepted request, replayed',
        accepted,
        /^signed_at_unix_ms: is \d+, not later than the last enrolment accepted with this device key/,
      ],
    ];
    for (const [what, request, details] of cases) {
      const err = await refusal(api.enroll(request));
      expect(status[err.code], `${what}: ${err.details}`).toBe('INVALID_ARGUMENT');
      expect(err.details, what).toMatch(details);
    }
    expect(cp.registry.get(deviceId)).toEqual(before);
    expect((await keyAdmin(cp.address).listPending({})).pending).toEqual([]);
  });

  it('a record from before device keys adopts the first key it sees (trust on first use)', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const name = `device-${randomUUID()}`;
    const legacy = {
      enrollmentToken: ENROLLMENT_TOKEN,
      deviceName: name,
      profile: profileToProto(fixtureProfile('raspberry-pi-4')),
      agentVersion: '0.0.9',
    };
    const old = await api.enroll(legacy);
    expect(cp.registry.get(old.deviceId)?.publicKey).toBeUndefined();
    // An old agent enrols it again as before.
    const oldAgain = await api.enroll(legacy);
    await api.heartbeat(idle, oldAgain.deviceCredential);

    const key = DeviceKey.generate();
    const adopted = await api.enroll(signedEnroll(name, key));
    expect(adopted.deviceId).toBe(old.deviceId);
    expect(cp.registry.get(old.deviceId)?.publicKey).toBe(key.publicKeyRaw.toString('base64'));
    await api.heartbeat(idle, adopted.deviceCredential);
    // Whoever held the keyless credentials finds out, and cannot enrol without the key.
    await expectStatus(api.heartbeat(idle, oldAgain.deviceCredential), status.UNAUTHENTICATED);
    await expectStatus(api.enroll(legacy), status.FAILED_PRECONDITION, /device_public_key/);
  });

  it('a second agent under an enrolled name waits for approval, then takes over; the first is cut off', async () => {
    const cp = await startTestControlPlane();
    const admin = keyAdmin(cp.address);
    const name = `pi-${randomUUID().slice(0, 8)}`;
    const first = await startTestAgent(
      cp.address,
      { cpuinfo: 'raspberry-pi-4' },
      { deviceName: name },
    );
    await eventually(() => expect(first.status.heartbeatsOk).toBeGreaterThanOrEqual(1));
    const keyFile = join(first.options.dataDir, 'device-key.pem');
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const firstKey = (await loadOrCreateDeviceKey(first.options.dataDir)).key;
    expect(cp.registry.get(first.deviceId!)?.publicKey).toBe(
      firstKey.publicKeyRaw.toString('base64'),
    );

    // The same name on another machine (another data dir, so another key).
    const secondDir = await mkdtemp(join(tmpdir(), 'edgeforge-second-'));
    onTestFinished(() => rm(secondDir, { recursive: true, force: true }));
    const starting = startTestAgent(
      cp.address,
      { cpuinfo: 'raspberry-pi-4' },
      { deviceName: name, dataDir: secondDir },
    );
    starting.catch(() => {});
    const pending = await eventually(async () => {
      const found = (await admin.listPending({})).pending.find((p) => p.deviceName === name);
      expect(found).toBeDefined();
      return found!;
    });
    const secondKey = (await loadOrCreateDeviceKey(secondDir)).key;
    expect(pending).toMatchObject({
      deviceId: first.deviceId,
      keyFingerprint: secondKey.fingerprint,
      currentKeyFingerprint: firstKey.fingerprint,
    });
    // It waits (asking again), and the first keeps working meanwhile.
    const beats = first.status.heartbeatsOk;
    await eventually(() => expect(first.status.heartbeatsOk).toBeGreaterThan(beats + 1));
    expect(cp.registry.get(first.deviceId!)?.publicKey).toBe(
      firstKey.publicKeyRaw.toString('base64'),
    );

    await admin.approve({ pendingId: pending.pendingId });
    const second = await starting;
    expect(second.deviceId).toBe(first.deviceId);
    await eventually(() => expect(second.status.heartbeatsOk).toBeGreaterThanOrEqual(1));
    // The first is refused, enrols again with its own key, and now waits in turn.
    await eventually(() => {
      expect(first.status.lastError).toMatchObject({ code: 'FAILED_PRECONDITION' });
      expect(first.status.lastError?.message).toMatch(/an operator must approve this device key/);
    }, 15_000);
    expect(first.status.enrollments).toBe(1);
    const okBefore = second.status.heartbeatsOk;
    await eventually(() => expect(second.status.heartbeatsOk).toBeGreaterThan(okBefore));
  });

  it('the CLI: fleet token, pending, approve and reject', async () => {
    const cp = await startTestControlPlane();
    const api = rawClients(cp.address);
    const env = { EDGEFORGE_CONTROL_PLANE: cp.address, EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN };
    const name = `device-${randomUUID()}`;

    const token = await runCli(['fleet', 'token', name, '--ttl', '10m'], env);
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout).toMatch(/^efo1\.\S+\n$/);
    expect(token.stderr).toMatch(new RegExp(`one-time enrollment token for ${name} .*valid once`));
    const owner = DeviceKey.generate();
    const { deviceId } = await api.enroll(signedEnroll(name, owner, token.stdout.trim()));
    const badTtl = await runCli(['fleet', 'token', name, '--ttl', '8d'], env);
    expect(badTtl.code).toBe(2);
    expect(badTtl.stderr).toMatch(/expected a duration from 1s to 7d/);

    const stranger = DeviceKey.generate();
    const first = pendingIdOf(await refusal(api.enroll(signedEnroll(name, stranger))));
    const list = await runCli(['fleet', 'pending'], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(`${first.replace('.', '\\.')}\\s+${name}\\s+${stranger.fingerprint.slice(0, 32)}`),
    );
    expect(list.stdout).toMatch(/1 pending enrolment\(s\)/);
    const rejected = await runCli(['fleet', 'reject', first], env);
    expect(rejected.stdout).toBe(`rejected ${first}\n`);

    const second = pendingIdOf(await refusal(api.enroll(signedEnroll(name, stranger))));
    const approved = await runCli(['fleet', 'approve', second], env);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain(`approved ${second} for ${deviceId} (${name})`);
    expect(approved.stdout).toContain(stranger.fingerprint);
    await api.enroll(signedEnroll(name, stranger));
    const again = await runCli(['fleet', 'approve', second], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no pending enrolment/);
  });
});
