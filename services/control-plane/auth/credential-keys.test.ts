import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateSecret } from '../../../common/secrets.js';
import {
  CREDENTIAL_KEY_FILE,
  CREDENTIAL_KEY_SET_FILE,
  loadCredentialKeys,
} from './credential-keys.js';
import { CredentialAuthority } from './credentials.js';
import { FleetKeys } from './fleet-keys.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeforge-credkeys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const log = pino({ level: 'silent' });

describe('credential key set', () => {
  it('takes the single-key file in as key 0 and writes nothing until a rotation', async () => {
    const legacy = await loadOrCreateSecret(join(dir, CREDENTIAL_KEY_FILE), 32);
    const keys = await loadCredentialKeys(dir);
    expect(keys).toEqual([{ id: 0, key: legacy, createdAt: 0 }]);
    await expect(stat(join(dir, CREDENTIAL_KEY_SET_FILE))).rejects.toThrow(/ENOENT/);
  });

  it('migrates on the first rotation; a restart keeps old and new credentials working', async () => {
    const before = await FleetKeys.open({ dataDir: dir, credentialTtlSeconds: 3600, log });
    const old = before.authority.issue('d-1').credential;
    await before.rotateCredentialKey();
    const fresh = before.authority.issue('d-1').credential;
    expect(fresh.startsWith('efd2.1.')).toBe(true);
    expect((await stat(join(dir, CREDENTIAL_KEY_SET_FILE))).mode & 0o777).toBe(0o600);

    const after = await FleetKeys.open({ dataDir: dir, credentialTtlSeconds: 3600, log });
    expect(after.authority.verify(old).keyId).toBe(0);
    expect(after.authority.verify(fresh).keyId).toBe(1);
    expect(after.authority.keys.map((k) => k.id)).toEqual([0, 1]);
    // The versioned file is what counts from now on, whatever the old file holds.
    await writeFile(join(dir, CREDENTIAL_KEY_FILE), CredentialAuthority.generateKey());
    const again = await FleetKeys.open({ dataDir: dir, credentialTtlSeconds: 3600, log });
    expect(again.authority.verify(old).keyId).toBe(0);
  });

  it('refuses a corrupt key set by name', async () => {
    await writeFile(
      join(dir, CREDENTIAL_KEY_SET_FILE),
      JSON.stringify({
        schema: 'edgeforge.credential-keys/v1',
        keys: [{ id: 0, key: 'AA==', createdAt: 0 }],
      }),
    );
    await expect(loadCredentialKeys(dir)).rejects.toThrow(
      /credential-keys.json is corrupt: the credential key must have at least 32 bytes/,
    );
    expect(await readFile(join(dir, CREDENTIAL_KEY_SET_FILE), 'utf8')).toMatch(/AA==/);
  });
});
