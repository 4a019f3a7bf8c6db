import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HardwareProfile } from '../../common/hardware/index.js';
import { IdentityFileError, IdentityStore, type DeviceIdentity } from './identity-store.js';

const PROFILE: HardwareProfile = {
  arch: 'aarch64',
  cpuVendor: 'ARM',
  cpuModel: 'Cortex-A72',
  cores: 4,
  threads: 4,
  isaFeatures: ['neon', 'asimd'],
  memoryBytes: 4 * 1024 ** 3,
  accelerators: [],
  onnxRuntime: { version: '1.30.0', executionProviders: ['CPUExecutionProvider'] },
  os: { platform: 'linux', release: '6.12.47+rpt-rpi-v8' },
  deviceModel: 'Raspberry Pi 4 Model B Rev 1.1',
};

const IDENTITY: DeviceIdentity = {
  deviceId: 'd-0123456789abcdef0123',
  deviceName: 'pi-kitchen',
  credential: 'v1.eyJkZXZpY2UiOiJkLTEifQ.c2lnbmF0dXJl',
  credentialExpiresAt: '2030-01-01T00:00:00.000Z',
  hardwareClass: 'aarch64-neon-nofp16-cpu-4g',
  manifestPublicKey: Buffer.alloc(32, 1).toString('base64'),
  natsUrl: 'nats://10.0.0.2:4222',
  controlPlane: 'control-plane.local:7443',
  profile: PROFILE,
};

describe('IdentityStore', () => {
  let dir: string;
  let store: IdentityStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-identity-'));
    // A data dir that does not exist yet, as on a fresh device.
    store = new IdentityStore(join(dir, 'agent'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has nothing before the first enrollment', async () => {
    expect(await store.load()).toBeUndefined();
  });

  it('reads back what it wrote', async () => {
    await store.save(IDENTITY);
    expect(await store.load()).toEqual(IDENTITY);
    const withoutExpiry: DeviceIdentity = { ...IDENTITY, credential: 'renewed' };
    delete withoutExpiry.credentialExpiresAt;
    await store.save(withoutExpiry);
    expect(await store.load()).toEqual(withoutExpiry);
  });

  it('keeps the credential private: file 0600, folder 0700', async () => {
    await store.save(IDENTITY);
    expect((await stat(store.file)).mode & 0o777).toBe(0o600);
    expect((await stat(store.dataDir)).mode & 0o777).toBe(0o700);
    // Still 0600 when it replaces a file someone opened up.
    await chmod(store.file, 0o644);
    await store.save(IDENTITY);
    expect((await stat(store.file)).mode & 0o777).toBe(0o600);
  });

  it('leaves no temp files behind, after success or failure', async () => {
    for (let i = 0; i < 3; i++) await store.save({ ...IDENTITY, credential: `c${i}` });
    expect(await readdir(store.dataDir)).toEqual(['identity.json']);

    // A non-empty folder where the file goes makes the rename fail after the temp file was written.
    const blocked = new IdentityStore(join(dir, 'blocked'));
    await mkdir(blocked.file, { recursive: true });
    await writeFile(join(blocked.file, 'keep'), '');
    await expect(blocked.save(IDENTITY)).rejects.toThrow(IdentityFileError);
    expect(await readdir(blocked.dataDir)).toEqual(['identity.json']);
  });

  it.each([
    ['not JSON', '{"deviceId": "d-1", ', /is corrupt: it is not valid JSON/],
    [
      'a missing credential',
      JSON.stringify({ ...IDENTITY, credential: undefined }),
      /"credential"/,
    ],
    [
      'a bad expiry',
      JSON.stringify({ ...IDENTITY, credentialExpiresAt: 'soon' }),
      /"credentialExpiresAt"/,
    ],
    [
      'a bad key',
      JSON.stringify({ ...IDENTITY, manifestPublicKey: 'not base64!' }),
      /"manifestPublicKey"/,
    ],
    [
      'a bad profile',
      JSON.stringify({ ...IDENTITY, profile: { ...PROFILE, cores: 0 } }),
      /"profile\.cores"/,
    ],
  ])('refuses a file with %s, says how to recover, and leaves it alone', async (_, text, field) => {
    await store.save(IDENTITY);
    await writeFile(store.file, text);
    const error = await store.load().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdentityFileError);
    expect((error as Error).message).toMatch(field);
    expect((error as Error).message).toContain(store.file);
    expect((error as Error).message).toMatch(/delete it to enroll this device again/);
    expect(await readFile(store.file, 'utf8')).toBe(text);
  });
});
