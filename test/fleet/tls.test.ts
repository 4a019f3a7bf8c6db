import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { beforeEach, describe, expect, it } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import { DeviceState } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { deviceIdFor } from '../../services/control-plane/grpc/fleet-service.js';
import { startTestAgent } from '../helpers/agents.js';
import { clientCertificate, type IssuedCertificate } from '../helpers/certificates.js';
import {
  ADMIN_TOKEN,
  ENROLLMENT_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { fixtureProfile } from '../helpers/profiles.js';
import { testNats } from '../helpers/stack.js';
import { createTestPki } from '../helpers/tls.js';

const enroll = (deviceName = 'tls-device') => ({
  enrollmentToken: ENROLLMENT_TOKEN,
  deviceName,
  profile: profileToProto(fixtureProfile('raspberry-pi-5')),
  agentVersion: '0.1.0',
});

const idle = { state: DeviceState.DEVICE_STATE_IDLE };

async function failure(call: Promise<unknown>): Promise<ServiceError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e as ServiceError,
  );
  if (!err) throw new Error('the call succeeded');
  return err;
}

async function mtlsControlPlane() {
  const pki = await createTestPki();
  const cp = await startTestControlPlane({
    tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert },
  });
  const ca = await pki.read(pki.caCert);
  /** Raw clients over mTLS with `certificate` (another one per name: each its own channel). */
  const as = async (certificate: IssuedCertificate) =>
    rawClients(
      cp.address,
      credentials.createSsl(ca, await pki.read(certificate.key), await pki.read(certificate.cert)),
    );
  return { pki, cp, ca, as };
}

describe('control plane over TLS', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('with mTLS, serves clients that present a certificate from the fleet CA and no others', async () => {
    const { pki, cp, ca, as } = await mtlsControlPlane();
    const withCert = await as(clientCertificate(pki, 'tls-device'));
    expect((await withCert.enroll(enroll())).hardwareClass).toBe('aarch64-dotprod-fp16-cpu-4g');

    for (const refused of [
      rawClients(cp.address, credentials.createSsl(ca)),
      rawClients(cp.address),
    ]) {
      const err = await failure(refused.enroll(enroll()));
      expect(status[err.code]).toBe('UNAVAILABLE');
    }
  });

  it('with mTLS, takes device calls only with the certificate of the device whose credential it is', async () => {
    const { pki, as } = await mtlsControlPlane();
    const a = await (await as(clientCertificate(pki, 'tls-device'))).enroll(enroll('tls-device'));
    const b = await (await as(clientCertificate(pki, 'tls-other'))).enroll(enroll('tls-other'));
    expect(a.deviceId).not.toBe(b.deviceId);

    // The certificate names the device by its name or by its id: both are a's.
    for (const cn of ['tls-device', a.deviceId]) {
      const beat = await (await as(clientCertificate(pki, cn))).heartbeat(idle, a.deviceCredential);
      expect(beat.nextHeartbeatSeconds, cn).toBe(1);
    }

    // a's credential over b's certificate (CN = b's device id, or b's name): refused, named.
    for (const cn of [b.deviceId, 'tls-other']) {
      const err = await failure(
        (await as(clientCertificate(pki, cn))).heartbeat(idle, a.deviceCredential),
      );
      expect(status[err.code], cn).toBe('PERMISSION_DENIED');
      expect(err.details).toContain(
        `the client certificate is for "${cn}" (device ${b.deviceId}), but the credential is ` +
          `device ${a.deviceId}'s`,
      );
    }

    // Enrolling a name with another device's certificate: refused before anything is written.
    const err = await failure(
      (await as(clientCertificate(pki, 'tls-device'))).enroll(enroll('tls-third')),
    );
    expect(status[err.code]).toBe('PERMISSION_DENIED');
    expect(err.details).toContain(
      `the client certificate is for "tls-device" (device ${a.deviceId}), but the request ` +
        `enrolls "tls-third" (device ${deviceIdFor('tls-third')})`,
    );

    // Operators authenticate with the admin credential: any certificate of the CA will do.
    const admin = await as(clientCertificate(pki, 'operator'));
    const { devices } = await admin.listDevices(
      { hardwareClass: '', pageSize: 0, pageToken: '' },
      ADMIN_TOKEN,
    );
    expect(devices.map((d) => d.deviceName).sort()).toEqual(['tls-device', 'tls-other']);
  });

  it("runs an agent over mTLS with its own certificate, and refuses one with another device's", async () => {
    const { pki, cp } = await mtlsControlPlane();
    const mine = clientCertificate(pki, 'tls-agent');
    const agent = await startTestAgent(
      cp.address,
      { cpuinfo: 'raspberry-pi-5' },
      {
        deviceName: 'tls-agent',
        tls: { caFile: pki.caCert, certFile: mine.cert, keyFile: mine.key },
      },
    );
    expect(agent.deviceId).toBe(deviceIdFor('tls-agent'));

    const theirs = clientCertificate(pki, 'someone-else');
    const err = await startTestAgent(
      cp.address,
      { cpuinfo: 'raspberry-pi-5' },
      {
        deviceName: 'tls-impostor',
        tls: { caFile: pki.caCert, certFile: theirs.cert, keyFile: theirs.key },
      },
    ).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/PERMISSION_DENIED: the client certificate is for "someone-else"/);
  });
});
