import { mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentSettings } from './settings.js';

const REQUIRED = { EDGEFORGE_CONTROL_PLANE: 'cp.local:7443', EDGEFORGE_ENROLLMENT_TOKEN: 'secret' };

describe('loadAgentSettings', () => {
  it('reads the environment and fills in defaults', () => {
    expect(loadAgentSettings(REQUIRED)).toEqual({
      controlPlane: 'cp.local:7443',
      enrollmentToken: 'secret',
      dataDir: join(homedir(), '.edgeforge', 'agent'),
      metricsAddress: '0.0.0.0:9465',
      servingAddress: '127.0.0.1:9466',
      tls: undefined,
      profileOverrideFile: undefined,
      deviceName: undefined,
    });
  });

  it('lets flags win over the environment', () => {
    const settings = loadAgentSettings(
      {
        ...REQUIRED,
        EDGEFORGE_AGENT_DATA_DIR: '/var/lib/env',
        EDGEFORGE_AGENT_METRICS: '[::]:9100',
        EDGEFORGE_AGENT_SERVE: '127.0.0.1:7000',
      },
      { dataDir: '/var/lib/flag', deviceName: 'pi-7', profile: 'sim/pi4.json', serve: '[::1]:0' },
    );
    expect(settings).toMatchObject({
      dataDir: '/var/lib/flag',
      deviceName: 'pi-7',
      profileOverrideFile: 'sim/pi4.json',
      metricsAddress: '[::]:9100',
      servingAddress: '[::1]:0',
    });
  });

  it('turns TLS on when any TLS file is given', () => {
    expect(loadAgentSettings({ ...REQUIRED, EDGEFORGE_AGENT_TLS_CA: '/etc/ca.pem' }).tls).toEqual({
      caFile: '/etc/ca.pem',
      certFile: undefined,
      keyFile: undefined,
    });
  });

  it('reports every problem at once, naming the flag and the variable', () => {
    expect(() =>
      loadAgentSettings({ EDGEFORGE_AGENT_METRICS: '9464', EDGEFORGE_AGENT_TLS_CERT: 'c.pem' }),
    ).toThrow(
      new RegExp(
        [
          '--control-plane / EDGEFORGE_CONTROL_PLANE is required',
          '--metrics / EDGEFORGE_AGENT_METRICS: "9464" is not host:port',
          '--enrollment-token-file / EDGEFORGE_ENROLLMENT_TOKEN_FILE \\(or EDGEFORGE_ENROLLMENT_TOKEN\\) is required',
          '--tls-cert / EDGEFORGE_AGENT_TLS_CERT and --tls-key / EDGEFORGE_AGENT_TLS_KEY go together',
        ].join('[^]*'),
      ),
    );
  });

  it('reads the enrollment token from its file, and refuses it on the command line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeforge-settings-'));
    const file = join(dir, 'token');
    writeFileSync(file, 'from-the-file\n', { mode: 0o600 });
    const env = { EDGEFORGE_CONTROL_PLANE: 'cp.local:7443' };
    expect(loadAgentSettings(env, { enrollmentTokenFile: file }).enrollmentToken).toBe(
      'from-the-file',
    );
    expect(() => loadAgentSettings(env, { enrollmentTokenFile: join(dir, 'missing') })).toThrow(
      /EDGEFORGE_ENROLLMENT_TOKEN_FILE: cannot read .*missing \(ENOENT\)/,
    );
    expect(() => loadAgentSettings(REQUIRED, { enrollmentToken: 'on-argv' })).toThrow(
      /--enrollment-token puts the fleet secret in the process list \(ps\)/,
    );
  });
});
