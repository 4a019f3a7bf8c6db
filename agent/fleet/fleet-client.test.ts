import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import { parseCpuinfo, profileFromCpuinfo } from '../../common/hardware/index.js';
import {
  DeviceState,
  FleetServiceService,
  type EnrollRequest,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { FleetDouble, TEST_ENROLLMENT_TOKEN } from '../test-support/fleet-double.js';
import { FleetCallError, FleetClient } from './fleet-client.js';

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

const ENROLL: EnrollRequest = {
  enrollmentToken: TEST_ENROLLMENT_TOKEN,
  deviceName: 'pi-kitchen',
  profile: profileToProto(PI4),
  agentVersion: '0.1.0',
};

async function failure(promise: Promise<unknown>): Promise<FleetCallError> {
  const error = await promise.then(
    () => new Error('expected the call to fail'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FleetCallError);
  return error as FleetCallError;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('FleetClient', () => {
  it('enrolls, then heartbeats with the credential as bearer metadata', async () => {
    const fleet = new FleetDouble();
    await fleet.start();
    const client = new FleetClient({ address: fleet.address });
    cleanups.push(
      () => fleet.stop(),
      () => client.close(),
    );

    const enrolled = await client.enroll(ENROLL);
    expect(enrolled).toMatchObject({
      deviceId: 'd-1',
      hardwareClass: 'aarch64-neon-nofp16-cpu-4g',
    });
    await client.heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, enrolled.deviceCredential);
    expect(fleet.heartbeats[0]?.credential).toBe(enrolled.deviceCredential);
  });

  it('keeps the gRPC status code in its errors', async () => {
    const fleet = new FleetDouble();
    await fleet.start();
    const client = new FleetClient({ address: fleet.address });
    cleanups.push(
      () => fleet.stop(),
      () => client.close(),
    );

    const refused = await failure(
      client.heartbeat({ state: DeviceState.DEVICE_STATE_IDLE }, 'bogus'),
    );
    expect(refused.code).toBe(status.UNAUTHENTICATED);
    expect(refused.transient).toBe(false);
    expect(refused.message).toMatch(/^Heartbeat to 127\.0\.0\.1:\d+ failed: UNAUTHENTICATED: /);

    fleet.stop();
    const down = await failure(client.enroll(ENROLL));
    expect(down.code).toBe(status.UNAVAILABLE);
    expect(down.transient).toBe(true);
  });

  it('gives up at the deadline on a control plane that does not answer', async () => {
    // Accepts every call and never answers.
    const server = new Server();
    const silent = () => {};
    server.addService(FleetServiceService, {
      enroll: silent,
      heartbeat: silent,
      reportBenchmark: silent,
      reportStatus: silent,
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const client = new FleetClient({ address: `127.0.0.1:${port}`, deadlineMs: 200 });
    cleanups.push(
      () => server.forceShutdown(),
      () => client.close(),
    );

    const late = await failure(client.enroll(ENROLL));
    expect(late.code).toBe(status.DEADLINE_EXCEEDED);
    expect(late.transient).toBe(true);

    const abort = new AbortController();
    const pending = client.enroll(ENROLL, abort.signal);
    abort.abort();
    expect((await failure(pending)).code).toBe(status.CANCELLED);
  });

  it('refuses a client certificate without its key before connecting', () => {
    expect(
      () => new FleetClient({ address: '127.0.0.1:1', tls: { certFile: '/tmp/client.pem' } }),
    ).toThrow(/mTLS needs both a client certificate and its private key/);
    expect(
      () => new FleetClient({ address: '127.0.0.1:1', tls: { caFile: '/nonexistent/ca.pem' } }),
    ).toThrow(/cannot read the TLS CA file \/nonexistent\/ca\.pem/);
  });
});

describe('FleetClient over TLS', () => {
  let dir: string;
  let fleet: FleetDouble;
  const file = (name: string) => join(dir, name);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeforge-tls-'));
    const openssl = (args: string) =>
      execFileSync('openssl', args.split(' '), { cwd: dir, stdio: 'pipe' });
    const newKey = '-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes';
    openssl(`req -x509 ${newKey} -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca`);
    writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1\n');
    writeFileSync(file('client.ext'), 'extendedKeyUsage=clientAuth\n');
    for (const name of ['server', 'client']) {
      openssl(`req ${newKey} -keyout ${name}.key -out ${name}.csr -subj /CN=${name}`);
      openssl(
        `x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 ` +
          `-out ${name}.pem -extfile ${name}.ext`,
      );
    }
    // mTLS: the server only talks to clients whose certificate the test CA signed.
    fleet = new FleetDouble(
      ServerCredentials.createSsl(
        readFileSync(file('ca.pem')),
        [
          {
            private_key: readFileSync(file('server.key')),
            cert_chain: readFileSync(file('server.pem')),
          },
        ],
        true,
      ),
    );
    await fleet.start();
  });
  afterAll(() => {
    fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function client(tls: ConstructorParameters<typeof FleetClient>[0]['tls']): FleetClient {
    const c = new FleetClient({ address: fleet.address, tls });
    cleanups.push(() => c.close());
    return c;
  }

  it('enrolls over mTLS with the CA, client certificate and key', async () => {
    const c = client({
      caFile: file('ca.pem'),
      certFile: file('client.pem'),
      keyFile: file('client.key'),
    });
    expect((await c.enroll(ENROLL)).deviceId).toMatch(/^d-\d+$/);
  });

  it('is turned away without a client certificate', async () => {
    const error = await failure(client({ caFile: file('ca.pem') }).enroll(ENROLL));
    expect(error.code).toBe(status.UNAVAILABLE);
  });

  it('does not trust a server certificate the system roots did not sign', async () => {
    const error = await failure(
      client({ certFile: file('client.pem'), keyFile: file('client.key') }).enroll(ENROLL),
    );
    expect(error.code).toBe(status.UNAVAILABLE);
  });
});
