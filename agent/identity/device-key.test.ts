import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEVICE_KEY_FILE,
  DeviceKey,
  DeviceKeyFileError,
  enrollProofMessage,
  loadOrCreateDeviceKey,
} from './device-key.js';

describe('device key file', () => {
  let dir: string;
  let dataDir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-device-key-'));
    // A data dir that does not exist yet, as on a fresh device.
    dataDir = join(dir, 'agent');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is made on first use, private (0600), and the same key on every later start', async () => {
    const first = await loadOrCreateDeviceKey(dataDir);
    expect(first.created).toBe(true);
    expect(first.file).toBe(join(dataDir, DEVICE_KEY_FILE));
    expect((await stat(first.file)).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(first.key.publicKeyRaw).toHaveLength(32);
    expect(first.key.fingerprint).toMatch(/^[0-9a-f]{64}$/);

    const again = await loadOrCreateDeviceKey(dataDir);
    expect(again.created).toBe(false);
    expect(again.key.publicKeyRaw).toEqual(first.key.publicKeyRaw);
    // No temporary files left behind.
    expect(await readdir(dataDir)).toEqual([DEVICE_KEY_FILE]);
  });

  it('is never overwritten: agents starting at once all end up with the one key on disk', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, () => loadOrCreateDeviceKey(dataDir)),
    );
    const onDisk = DeviceKey.fromPem(await readFile(join(dataDir, DEVICE_KEY_FILE)));
    for (const { key } of results) expect(key.publicKeyRaw).toEqual(onDisk.publicKeyRaw);
    expect(results.filter((r) => r.created).length).toBeLessThanOrEqual(1);
    expect(await readdir(dataDir)).toEqual([DEVICE_KEY_FILE]);
  });

  it.each([
    ['garbage', 'not a key at all\n'],
    ['an empty file', ''],
    [
      'an RSA key',
      generateKeyPairSync('rsa', { modulusLength: 1024 })
        .privateKey.export({ format: 'pem', type: 'pkcs8' })
        .toString(),
    ],
  ])('refuses %s and leaves it as it is, for a person to look at', async (_what, content) => {
    await loadOrCreateDeviceKey(dataDir);
    const file = join(dataDir, DEVICE_KEY_FILE);
    await writeFile(file, content);
    const err = await loadOrCreateDeviceKey(dataDir).then(
      () => new Error('expected a refusal'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeviceKeyFileError);
    expect((err as Error).message).toMatch(
      /device-key\.pem is corrupt: it is not an ed25519 private key.*will not replace it.*edgeforge fleet token/,
    );
    expect(await readFile(file, 'utf8')).toBe(content);
  });
});

describe('enrolment proof', () => {
  it('signs the proof string of fleet.proto: context, name, time, sha256 of the token', () => {
    // The same bytes services/control-plane/registry/device-key.test.ts pins.
    expect(
      enrollProofMessage({
        deviceName: 'pi-kitchen',
        signedAtUnixMs: 1_767_225_600_000,
        enrollmentToken: 'fleet-secret',
      }).toString('utf8'),
    ).toBe(
      'edgeforge-enroll-v1\npi-kitchen\n1767225600000\n' +
        '4df36724a45ffea37ced74da0d12809c12f178df16c08c4cb7867c3c8a7739b4\n',
    );
  });

  it('is a fresh ed25519 signature by the device key over this request', () => {
    const key = DeviceKey.generate();
    const fields = { deviceName: 'pi-kitchen', enrollmentToken: 'fleet-secret' };
    const proof = key.enrollProof(fields, 1_767_225_600_000);
    expect(proof.signedAtUnixMs).toBe(1_767_225_600_000);
    expect(proof.devicePublicKey).toEqual(key.publicKeyRaw);
    expect(proof.keySignature).toHaveLength(64);
    const publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: key.publicKeyRaw.toString('base64url') },
      format: 'jwk',
    });
    const message = enrollProofMessage({ ...fields, signedAtUnixMs: proof.signedAtUnixMs });
    expect(verify(null, message, publicKey, proof.keySignature)).toBe(true);
    const otherName = enrollProofMessage({ ...fields, deviceName: 'pi-garage', signedAtUnixMs: 1 });
    expect(verify(null, otherName, publicKey, proof.keySignature)).toBe(false);
    // Round-trips through its PEM.
    expect(DeviceKey.fromPem(key.toPem()).publicKeyRaw).toEqual(key.publicKeyRaw);
  });
});
