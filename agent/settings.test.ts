import { mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FleetClient, isLoopbackAddress } from './fleet/fleet-client.js';
import { loadAgentSettings } from './settings.js';

const REQUIRED = { EDGEFORGE_CONTROL_PLANE: 'cp.local:7443', EDGEFORGE_ENROLLMENT_TOKEN: 'secret' };

describe('loadAgentSettings', () => {
  it('reads the environment and fills in defaults', () => {
    expect(loadAgentSettings({ ...REQUIRED, EDGEFORGE_CONTROL_PLANE: '127.0.0.1:7443' })).toEqual({
      controlPlane: '127.0.0.1:7443',
      enrollmentToken: 'secret',
      dataDir: join(homedir(), '.edgeforge', 'agent'),
      metricsAddress: '127.0.0.1:9465',
      servingAddress: '127.0.0.1:9466',
      tls: undefined,
      natsCaFile: undefined,
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
        EDGEFORGE_AGENT_TLS: 'false',
      },
      {
        tls: true,
        dataDir: '/var/lib/flag',
        deviceName: 'pi-7',
        profile: 'sim/pi4.json',
        serve: '[::1]:0',
      },
    );
    expect(settings).toMatchObject({
      tls: {},
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
    const env = { EDGEFORGE_CONTROL_PLANE: '127.0.0.1:7443' };
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

  it('refuses plaintext to a control plane that is not on loopback, unless --insecure', () => {
    // The embedded stack's loopback control plane: plaintext is the default.
    for (const address of ['127.0.0.1:7443', '127.3.0.1:7443', 'localhost:7443', '[::1]:7443']) {
      expect(loadAgentSettings({ ...REQUIRED, EDGEFORGE_CONTROL_PLANE: address }).tls).toBe(
        undefined,
      );
    }
    // Anywhere else: refused, naming the flags that fix it.
    for (const address of ['cp.local:7443', '10.0.0.5:7443', '[fd00::1]:7443', '0.0.0.0:7443']) {
      expect(() => loadAgentSettings({ ...REQUIRED, EDGEFORGE_CONTROL_PLANE: address })).toThrow(
        new RegExp(
          `--control-plane / EDGEFORGE_CONTROL_PLANE: ${address.replace(/[[\].]/g, '\\$&')} is ` +
            'not a loopback address.*Give --tls / EDGEFORGE_AGENT_TLS.*or --tls-ca <file>, or ' +
            '--insecure / EDGEFORGE_AGENT_INSECURE',
        ),
      );
    }
    // Plaintext on purpose: the switch from commander, or its variable.
    expect(loadAgentSettings(REQUIRED, { insecure: true })).toMatchObject({
      controlPlane: 'cp.local:7443',
      tls: undefined,
      insecure: true,
    });
    expect(loadAgentSettings({ ...REQUIRED, EDGEFORGE_AGENT_INSECURE: 'true' }).insecure).toBe(
      true,
    );
    // Only true counts: `false` is still refused, and a typo is named.
    expect(() => loadAgentSettings({ ...REQUIRED, EDGEFORGE_AGENT_INSECURE: 'false' })).toThrow(
      /not a loopback address/,
    );
    expect(() =>
      loadAgentSettings({ ...REQUIRED, EDGEFORGE_AGENT_INSECURE: 'yes please' }),
    ).toThrow(/--insecure \/ EDGEFORGE_AGENT_INSECURE: expected true or false, not "yes please"/);
  });

  it('turns on TLS with the system trust roots with --tls, and refuses it together with --insecure', () => {
    expect(loadAgentSettings(REQUIRED, { tls: true }).tls).toEqual({
      caFile: undefined,
      certFile: undefined,
      keyFile: undefined,
    });
    expect(loadAgentSettings({ ...REQUIRED, EDGEFORGE_AGENT_TLS: '1' }).tls).toBeDefined();
    expect(() => loadAgentSettings(REQUIRED, { tls: true, insecure: true })).toThrow(
      /--insecure \/ EDGEFORGE_AGENT_INSECURE and TLS .* contradict each other/,
    );
    expect(() =>
      loadAgentSettings(
        { ...REQUIRED, EDGEFORGE_AGENT_TLS_CA: '/etc/ca.pem' },
        { insecure: 'true' },
      ),
    ).toThrow(/contradict each other/);
  });

  it("reads the NATS CA file from --nats-ca-file or EDGEFORGE_NATS_CA_FILE, and checks it's there", () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeforge-settings-'));
    const ca = join(dir, 'nats-ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n');
    const env = { ...REQUIRED, EDGEFORGE_AGENT_TLS: 'true' };
    expect(loadAgentSettings({ ...env, EDGEFORGE_NATS_CA_FILE: ca }).natsCaFile).toBe(ca);
    expect(loadAgentSettings(env, { natsCaFile: ca }).natsCaFile).toBe(ca);
    expect(() => loadAgentSettings(env, { natsCaFile: join(dir, 'missing.pem') })).toThrow(
      /--nats-ca-file \/ EDGEFORGE_NATS_CA_FILE: cannot read .*missing\.pem \(ENOENT\)/,
    );
  });
});

describe('the plaintext rule in the fleet client itself', () => {
  it('knows loopback addresses in their spellings', () => {
    for (const address of ['127.0.0.1:1', 'localhost:1', '[::1]:1', '[0:0:0:0:0:0:0:1]:1'])
      expect(isLoopbackAddress(address), address).toBe(true);
    for (const address of ['cp.local:1', '128.0.0.1:1', '[::2]:1', 'localhost.example.com:1'])
      expect(isLoopbackAddress(address), address).toBe(false);
  });

  it('refuses to build a plaintext channel to another host, whoever constructs it', () => {
    expect(() => new FleetClient({ address: 'cp.local:7443' })).toThrow(
      /refusing plaintext gRPC: cp\.local:7443 is not a loopback address/,
    );
    for (const client of [
      new FleetClient({ address: 'cp.local:7443', insecure: true }),
      new FleetClient({ address: 'cp.local:7443', tls: {} }),
      new FleetClient({ address: '127.0.0.1:7443' }),
    ])
      client.close();
  });
});
