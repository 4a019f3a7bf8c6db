/**
 * NATS over TLS, against a real nats-server: the deployment configurations' `tls` block with the
 * shared accounts.conf (deploy/nats), a certificate from a CA made for the test, and the clients'
 * connectNats (central services and agents alike).
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ServiceUnreachableError } from '../../common/errors.js';
import { connectNats, splitCredentials } from '../../common/nats.js';
import { loadToolchain, REPO_ROOT, startNatsServer } from '../../services/stack/index.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { startTestControlPlane } from '../helpers/control-plane.js';
import { createTestPki, type TestPki } from '../helpers/tls.js';

/** A nats-server on 127.0.0.1 that requires TLS: dev.conf's settings and accounts, plus `tls`. */
async function startTlsNatsServer(pki: TestPki, options: { monitor?: boolean } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'edgeforge-nats-tls-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  // Copied side by side, as the deployments ship them: dev.conf includes accounts.conf.
  for (const file of ['dev.conf', 'accounts.conf'])
    copyFileSync(join(REPO_ROOT, 'deploy/nats', file), join(dir, file));
  writeFileSync(
    join(dir, 'nats.conf'),
    [
      'include "dev.conf"',
      'tls {',
      `  cert_file: "${pki.serverCert}"`,
      `  key_file: "${pki.serverKey}"`,
      '  timeout: 5',
      '}',
      '',
    ].join('\n'),
  );
  const server = await startNatsServer({
    binary: loadToolchain().natsServer,
    storeDir: join(dir, 'jetstream'),
    configFile: join(dir, 'nats.conf'),
    logFile: join(dir, 'nats-server.log'),
    monitor: options.monitor,
  });
  onTestFinished(() => server.stop());
  return server;
}

/** tls://user:pass@127.0.0.1:PORT for the server's full-access user. */
const tlsUrl = (natsUrl: string) => natsUrl.replace(/^nats:\/\//, 'tls://');

describe('NATS over TLS', () => {
  it('connects over tls:// with the CA file, and works (JetStream included)', async () => {
    const pki = await createTestPki();
    const server = await startTlsNatsServer(pki);
    const nc = await connectNats(tlsUrl(server.url), { name: 'tls-test', caFile: pki.caCert });
    onTestFinished(() => nc.close());
    expect(nc.info?.tls_required).toBe(true);
    const sub = nc.subscribe('tls.echo', { max: 1 });
    nc.publish('tls.echo', 'over tls');
    for await (const m of sub) expect(m.string()).toBe('over tls');
    const account = await nc.request('$JS.API.INFO', undefined, { timeout: 5_000 });
    expect(account.json<{ type?: string }>().type).toBe(
      'io.nats.jetstream.api.v1.account_info_response',
    );
  });

  it('takes the CA file from EDGEFORGE_NATS_CA_FILE, as the central services do', async () => {
    const pki = await createTestPki();
    const server = await startTlsNatsServer(pki);
    process.env.EDGEFORGE_NATS_CA_FILE = pki.caCert;
    onTestFinished(() => {
      delete process.env.EDGEFORGE_NATS_CA_FILE;
    });
    const nc = await connectNats(tlsUrl(server.url), { name: 'tls-test-env' });
    onTestFinished(() => nc.close());
    expect(nc.info?.tls_required).toBe(true);
  });

  it('refuses a server whose CA is not trusted, with an error that says what to set', async () => {
    const pki = await createTestPki();
    const server = await startTlsNatsServer(pki);
    // Without the CA file (the test CA is in no system store), over tls:// and over a plain
    // nats:// URL alike: the client follows the server's TLS requirement and verifies it.
    for (const url of [tlsUrl(server.url), server.url]) {
      const err = await connectNats(url, { name: 'tls-test-untrusted', caFile: '' }).catch(
        (e: unknown) => e,
      );
      expect(err, url).toBeInstanceOf(ServiceUnreachableError);
      expect((err as Error).message).toMatch(/TLS certificate is not trusted/);
      expect((err as Error).message).toMatch(/EDGEFORGE_NATS_CA_FILE .*--nats-ca-file/);
      // The password never shows.
      expect((err as Error).message).not.toContain(splitCredentials(server.url).pass!);
    }
    // Another CA's file does not help either.
    const other = await createTestPki();
    const err = await connectNats(tlsUrl(server.url), {
      name: 'tls-test-other-ca',
      caFile: other.caCert,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      new RegExp(`not trusted .*Check that ${other.caCert} holds the CA`),
    );
  });

  it('does not talk plaintext to a server without TLS when the URL says tls://', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgeforge-nats-plain-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const plain = await startNatsServer({
      binary: loadToolchain().natsServer,
      storeDir: join(dir, 'jetstream'),
    });
    onTestFinished(() => plain.stop());
    const err = await connectNats(tlsUrl(plain.url), { name: 'tls-test-downgrade', caFile: '' })
      .then((nc) => nc.close().then(() => 'connected'))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnreachableError);
    expect((err as Error).message).toMatch(/offers no TLS, but tls:\/\/ or a CA file requires it/);
  });

  it('lets an agent in through the auth callout over TLS, trusting the CA from --nats-ca-file', async () => {
    const pki = await createTestPki();
    const server = await startTlsNatsServer(pki, { monitor: true });
    const central = await connectNats(tlsUrl(server.url), { name: 'cp', caFile: pki.caCert });
    const system = await connectNats(tlsUrl(server.systemUrl), {
      name: 'cp-system',
      caFile: pki.caCert,
    });
    onTestFinished(async () => {
      await Promise.all([central.drain(), system.drain()]);
    });
    const cp = await startTestControlPlane({
      nats: central,
      natsAuth: { issuerSeed: server.secrets.calloutIssuerSeed, system },
      advertisedNatsUrl: `tls://127.0.0.1:${server.port}`,
    });
    const agent = await startTestAgent(
      cp.address,
      { cpuinfo: 'raspberry-pi-5' },
      { natsCaFile: pki.caCert },
    );
    // The server lists the agent's connection, as the device's own user, over TLS.
    const connection = await eventually(async () => {
      const connz = (await (await fetch(`${server.monitorUrl}/connz?auth=true`)).json()) as {
        connections?: { name?: string; tls_version?: string; authorized_user?: string }[];
      };
      const found = connz.connections?.find((c) => c.name === `edgeforge-agent-${agent.deviceId}`);
      // Authorised by the callout as this device (the user name is the device id).
      expect(found?.authorized_user).toBe(agent.deviceId);
      return found!;
    });
    expect(connection.tls_version).toMatch(/^1\.[23]$/);
  });
});
