import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadManifestKeyPair } from './manifest.js';
import { followManifestKeyChain } from './manifest-key-rotation.js';
import {
  currentManifestSigningKey,
  loadManifestKeySet,
  MANIFEST_KEY_PEM_FILE,
  MANIFEST_KEY_SET_FILE,
  readManifestKeySet,
  rotateManifestKeySet,
  syncManifestKeyPem,
} from './manifest-key-set.js';
import { loadOrCreateManifestKey } from './secrets.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeforge-keyset-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const later = (hours: number) => new Date(Date.now() + hours * 3600_000);

describe('the manifest key set', () => {
  it('is the single pem as version 1 until the first rotation, and writes nothing else', async () => {
    const legacy = await loadOrCreateManifestKey(join(dir, MANIFEST_KEY_PEM_FILE));
    const set = await loadManifestKeySet(dir);
    expect(set.version).toBe(1);
    expect(set.rotations).toEqual([]);
    expect(set.key.publicKeyRaw.equals(legacy.publicKeyRaw)).toBe(true);
    expect(await readManifestKeySet(dir)).toBeUndefined();
  });

  it('rotates: a chain an agent pinning version 1 follows, kept across a reload', async () => {
    const v1 = await loadManifestKeySet(dir);
    const { set: v2 } = await rotateManifestKeySet(dir, v1, { previousKeyValidUntil: later(720) });
    const { set: v3 } = await rotateManifestKeySet(dir, v2, { previousKeyValidUntil: later(1) });
    expect(v3.version).toBe(3);

    const reloaded = await loadManifestKeySet(dir);
    expect(reloaded.version).toBe(3);
    expect(reloaded.key.publicKeyRaw.equals(v3.key.publicKeyRaw)).toBe(true);
    const walk = followManifestKeyChain(
      { version: 1, publicKey: v1.key.publicKeyRaw },
      reloaded.rotations,
    );
    expect(walk.refused).toBeUndefined();
    expect(walk.pinned).toEqual({ version: 3, publicKey: v3.key.publicKeyRaw });
    // The pem holds the current key too, for whoever reads it alone.
    const pem = await readFile(join(dir, MANIFEST_KEY_PEM_FILE), 'utf8');
    expect(loadManifestKeyPair(pem).publicKeyRaw.equals(v3.key.publicKeyRaw)).toBe(true);
    expect((await stat(join(dir, MANIFEST_KEY_SET_FILE))).mode & 0o777).toBe(0o600);
    // Retired private keys are not kept.
    const text = await readFile(join(dir, MANIFEST_KEY_SET_FILE), 'utf8');
    expect(text.match(/BEGIN PRIVATE KEY/g)).toHaveLength(1);
  });

  it('refuses to load a key set whose chain was tampered with', async () => {
    const { set } = await rotateManifestKeySet(dir, await loadManifestKeySet(dir), {
      previousKeyValidUntil: later(720),
    });
    const file = join(dir, MANIFEST_KEY_SET_FILE);
    const json = JSON.parse(await readFile(file, 'utf8')) as {
      rotations: { statementJson: string }[];
    };
    json.rotations[0]!.statementJson = json.rotations[0]!.statementJson.replace(
      /"previousKeyValidUntil":"[^"]+"/,
      '"previousKeyValidUntil":"2099-01-01T00:00:00.000Z"',
    );
    await writeFile(file, JSON.stringify(json));
    await expect(loadManifestKeySet(dir)).rejects.toThrow(
      /manifest-keys.json is corrupt: the rotation chain does not verify/,
    );
    expect(set.version).toBe(2);
  });

  it('brings the pem up to date after a crash between the two writes of a rotation', async () => {
    const v1 = await loadManifestKeySet(dir);
    const pemBefore = await readFile(join(dir, MANIFEST_KEY_PEM_FILE), 'utf8');
    const { set } = await rotateManifestKeySet(dir, v1, { previousKeyValidUntil: later(1) });
    await writeFile(join(dir, MANIFEST_KEY_PEM_FILE), pemBefore);
    expect(await syncManifestKeyPem(dir, set)).toBe(true);
    const pem = await readFile(join(dir, MANIFEST_KEY_PEM_FILE), 'utf8');
    expect(loadManifestKeyPair(pem).publicKeyRaw.equals(set.key.publicKeyRaw)).toBe(true);
    expect(await syncManifestKeyPem(dir, set)).toBe(false);
  });
});

describe('currentManifestSigningKey (the orchestrator)', () => {
  it('signs with the newest key after a rotation, without a restart', async () => {
    const pemFile = join(dir, MANIFEST_KEY_PEM_FILE);
    const v1 = await loadManifestKeySet(dir);
    const current = currentManifestSigningKey(pemFile);
    expect((await current()).publicKeyRaw.equals(v1.key.publicKeyRaw)).toBe(true);
    // Cached while nothing changes.
    expect(await current()).toBe(await current());

    const { set: v2 } = await rotateManifestKeySet(dir, v1, { previousKeyValidUntil: later(1) });
    expect((await current()).publicKeyRaw.equals(v2.key.publicKeyRaw)).toBe(true);
    const { set: v3 } = await rotateManifestKeySet(dir, v2, { previousKeyValidUntil: later(1) });
    expect((await current()).publicKeyRaw.equals(v3.key.publicKeyRaw)).toBe(true);
  });

  it('reads a pem alone (no key set beside it) again when it is replaced', async () => {
    const pemFile = join(dir, 'mounted', 'manifest-signing.pem');
    const first = await loadOrCreateManifestKey(pemFile);
    const current = currentManifestSigningKey(pemFile);
    expect((await current()).publicKeyRaw.equals(first.publicKeyRaw)).toBe(true);
    // An operator copies the rotated key into the Secret: a new file under the same name.
    const other = join(dir, 'other');
    const rotated = await rotateManifestKeySet(other, await loadManifestKeySet(other), {
      previousKeyValidUntil: later(1),
    });
    await rm(pemFile);
    await writeFile(pemFile, await readFile(join(other, MANIFEST_KEY_PEM_FILE)));
    expect((await current()).publicKeyRaw.equals(rotated.set.key.publicKeyRaw)).toBe(true);
  });
});
