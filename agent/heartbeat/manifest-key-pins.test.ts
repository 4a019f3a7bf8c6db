import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseCpuinfo, profileFromCpuinfo } from '../../common/hardware/index.js';
import {
  generateManifestKeyPair,
  loadManifestKeyPair,
  type ManifestKeyPair,
} from '../../common/manifest.js';
import {
  signManifestKeyRotation,
  type SignedManifestKeyRotation,
} from '../../common/manifest-key-rotation.js';
import { DeviceSession } from '../fleet/device-session.js';
import { FleetClient } from '../fleet/fleet-client.js';
import { IdentityStore, type DeviceIdentity } from '../identity/identity-store.js';
import { AgentMetrics } from '../metrics.js';
import { FleetDouble, TEST_ENROLLMENT_TOKEN } from '../test-support/fleet-double.js';
import {
  applyManifestKeyRotations,
  manifestVerificationKeys,
  MAX_PREVIOUS_MANIFEST_KEYS,
} from './manifest-key-pins.js';

const newKey = () => loadManifestKeyPair(generateManifestKeyPair().privateKeyPem);
const NOW = Date.parse('2026-03-02T00:00:00Z');
const DAY = 24 * 3600_000;

function rotation(
  version: number,
  previous: ManifestKeyPair,
  next: ManifestKeyPair,
  options: { signer?: ManifestKeyPair; validUntil?: number } = {},
): SignedManifestKeyRotation {
  return signManifestKeyRotation(
    {
      version,
      publicKey: next.publicKeyRaw.toString('base64'),
      previousVersion: version - 1,
      previousPublicKey: previous.publicKeyRaw.toString('base64'),
      issuedAt: new Date(NOW - DAY).toISOString(),
      previousKeyValidUntil: new Date(options.validUntil ?? NOW + 29 * DAY).toISOString(),
    },
    (options.signer ?? previous).privateKey,
    next.privateKey,
  );
}

/** As HeartbeatResponse carries it. */
const asMessage = (r: SignedManifestKeyRotation) => ({
  statementJson: r.statementJson,
  previousKeySignature: Buffer.from(r.previousKeySignature),
  newKeySignature: Buffer.from(r.newKeySignature),
});

const PI4 = profileFromCpuinfo(
  parseCpuinfo(
    readFileSync(
      fileURLToPath(new URL('../../test/fixtures/cpuinfo/raspberry-pi-4.txt', import.meta.url)),
      'utf8',
    ),
  ),
  {
    memoryBytes: 4 * 1024 ** 3,
    os: { platform: 'linux', release: '6.12.47' },
    onnxRuntime: { version: '1.30.0', executionProviders: ['CPUExecutionProvider'] },
  },
);

function identity(key: ManifestKeyPair, extra: Partial<DeviceIdentity> = {}): DeviceIdentity {
  return {
    deviceId: 'd-1',
    deviceName: 'pi-kitchen',
    credential: 'cred',
    hardwareClass: 'x',
    manifestPublicKey: key.publicKeyRaw.toString('base64'),
    natsUrl: '',
    controlPlane: 'cp:1',
    profile: PI4,
    ...extra,
  };
}

describe('applyManifestKeyRotations', () => {
  const k1 = newKey();
  const k2 = newKey();
  const k3 = newKey();
  const attacker = newKey();

  it('pins the new key and keeps the replaced one until its grace ends', () => {
    const update = applyManifestKeyRotations(identity(k1), [rotation(2, k1, k2)], NOW);
    expect(update.changed).toBe(true);
    expect(update.refused).toBeUndefined();
    expect(update.identity).toMatchObject({
      manifestPublicKey: k2.publicKeyRaw.toString('base64'),
      manifestKeyVersion: 2,
      previousManifestKeys: [
        {
          version: 1,
          publicKey: k1.publicKeyRaw.toString('base64'),
          validUntil: new Date(NOW + 29 * DAY).toISOString(),
        },
      ],
    });
    const keys = manifestVerificationKeys(update.identity, NOW);
    expect(keys.publicKey.equals(k2.publicKeyRaw)).toBe(true);
    expect(keys.previousPublicKeys.map((k) => k.toString('base64'))).toEqual([
      k1.publicKeyRaw.toString('base64'),
    ]);
    // After the grace the previous key verifies nothing, and the next update drops it.
    expect(manifestVerificationKeys(update.identity, NOW + 30 * DAY).previousPublicKeys).toEqual(
      [],
    );
    const later = applyManifestKeyRotations(update.identity, [rotation(2, k1, k2)], NOW + 30 * DAY);
    expect(later.changed).toBe(true);
    expect(later.identity.previousManifestKeys).toEqual([]);
  });

  it('changes nothing when the chain holds nothing new', () => {
    const pinned = identity(k1, { manifestKeyVersion: 1 });
    expect(applyManifestKeyRotations(pinned, [], NOW)).toEqual({
      identity: pinned,
      changed: false,
      accepted: [],
    });
  });

  it('refuses a forged statement and keeps the pin', () => {
    const pinned = identity(k1);
    const update = applyManifestKeyRotations(
      pinned,
      [rotation(2, k1, attacker, { signer: attacker })],
      NOW,
    );
    expect(update.changed).toBe(false);
    expect(update.identity).toBe(pinned);
    expect(update.refused?.reason).toBe('not_signed_by_pinned_key');
  });

  it('refuses a gap in the chain and keeps the pin', () => {
    const update = applyManifestKeyRotations(identity(k1), [rotation(3, k2, k3)], NOW);
    expect(update.changed).toBe(false);
    expect(update.refused?.reason).toBe('gap');
  });

  it('gives no grace to a key retired at once (it leaked)', () => {
    const update = applyManifestKeyRotations(
      identity(k1),
      [rotation(2, k1, k2, { validUntil: NOW - DAY })],
      NOW,
    );
    expect(update.identity.manifestKeyVersion).toBe(2);
    expect(update.identity.previousManifestKeys).toEqual([]);
  });

  it(`keeps at most ${MAX_PREVIOUS_MANIFEST_KEYS} previous keys, newest first`, () => {
    const k4 = newKey();
    const chain = [rotation(2, k1, k2), rotation(3, k2, k3), rotation(4, k3, k4)];
    const update = applyManifestKeyRotations(identity(k1), chain, NOW);
    expect(update.identity.manifestKeyVersion).toBe(4);
    expect(update.identity.previousManifestKeys?.map((k) => k.version)).toEqual([3, 2]);
  });

  it('learns the previous key of a key it enrolled with after a rotation', () => {
    const enrolledLate = identity(k2, { manifestKeyVersion: 2 });
    const update = applyManifestKeyRotations(enrolledLate, [rotation(2, k1, k2)], NOW);
    expect(update.changed).toBe(true);
    expect(update.identity.previousManifestKeys?.map((k) => k.version)).toEqual([1]);
  });
});

describe('pins in identity.json', () => {
  it('round-trips the pinned version and previous keys; a file from before rotation loads as is', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'edgeforge-pins-'));
    try {
      const store = new IdentityStore(dataDir);
      const k1 = newKey();
      const plain = identity(k1);
      await store.save(plain);
      expect(await store.load()).toEqual(plain);
      const pinned = applyManifestKeyRotations(plain, [rotation(2, k1, newKey())], NOW).identity;
      await store.save(pinned);
      expect(await store.load()).toEqual(pinned);
      expect(pinned.previousManifestKeys).toHaveLength(1);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('DeviceSession following key rotations', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function enrolledSession() {
    const k1 = newKey();
    const fleet = new FleetDouble();
    fleet.manifestPublicKey = k1.publicKeyRaw;
    await fleet.start();
    const client = new FleetClient({ address: fleet.address });
    const dataDir = await mkdtemp(join(tmpdir(), 'edgeforge-pins-'));
    cleanups.push(
      () => fleet.stop(),
      () => client.close(),
      () => rm(dataDir, { recursive: true, force: true }),
    );
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const store = new IdentityStore(dataDir);
    const session = new DeviceSession({
      client,
      store,
      enrollmentToken: TEST_ENROLLMENT_TOKEN,
      deviceName: 'pi-kitchen',
      profile: PI4,
      metrics: new AgentMetrics('0'),
      logger,
    });
    await session.enroll();
    return { k1, fleet, store, session, lines };
  }

  const stored = async (store: IdentityStore) =>
    JSON.parse(await readFile(store.file, 'utf8')) as DeviceIdentity;

  it('pins a rotated key in identity.json on the heartbeat that carries it', async () => {
    const { k1, fleet, store, session, lines } = await enrolledSession();
    expect((await stored(store)).manifestKeyVersion).toBe(1);
    const k2 = newKey();
    const r = rotation(2, k1, k2, { validUntil: Date.now() + DAY });
    fleet.manifestKeyRotations = [asMessage(r)];
    await session.heartbeat({ state: 0 });
    const after = await stored(store);
    expect(after.manifestKeyVersion).toBe(2);
    expect(after.manifestPublicKey).toBe(k2.publicKeyRaw.toString('base64'));
    expect(after.previousManifestKeys?.map((k) => k.version)).toEqual([1]);
    expect(session.identity?.manifestKeyVersion).toBe(2);
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'pinned the rotated manifest signing key', deviceId: 'd-1' }),
    );
    // The same chain again changes nothing.
    await session.heartbeat({ state: 0 });
    expect(await stored(store)).toEqual(after);
  });

  it('refuses a forged rotation: logged once with the device id, the pin kept', async () => {
    const { k1, fleet, store, session, lines } = await enrolledSession();
    const attacker = newKey();
    const r = rotation(2, k1, attacker, { signer: attacker });
    fleet.manifestKeyRotations = [asMessage(r)];
    const before = await stored(store);
    await session.heartbeat({ state: 0 });
    await session.heartbeat({ state: 0 });
    expect(await stored(store)).toEqual(before);
    expect(session.identity?.manifestPublicKey).toBe(k1.publicKeyRaw.toString('base64'));
    const refusals = lines.filter((l) => /refused a manifest key rotation/.test(String(l.msg)));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({
      level: 50,
      deviceId: 'd-1',
      reason: 'not_signed_by_pinned_key',
      keyVersion: 2,
      pinnedKeyVersion: 1,
    });
  });
});
