import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { beforeEach, describe, expect, it } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import {
  ENROLLMENT_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { fixtureProfile } from '../helpers/profiles.js';
import { testNats } from '../helpers/stack.js';
import { createTestPki } from '../helpers/tls.js';

const enroll = {
  enrollmentToken: ENROLLMENT_TOKEN,
  deviceName: 'tls-device',
  profile: profileToProto(fixtureProfile('raspberry-pi-5')),
  agentVersion: '0.1.0',
};

describe('control plane over TLS', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('with mTLS, serves clients that present a certificate from the fleet CA and no others', async () => {
    const pki = await createTestPki();
    const cp = await startTestControlPlane({
      tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert },
    });
    const ca = await pki.read(pki.caCert);
    const withCert = rawClients(
      cp.address,
      credentials.createSsl(ca, await pki.read(pki.clientKey), await pki.read(pki.clientCert)),
    );
    expect((await withCert.enroll(enroll)).hardwareClass).toBe('aarch64-dotprod-fp16-cpu-4g');

    for (const refused of [
      rawClients(cp.address, credentials.createSsl(ca)),
      rawClients(cp.address),
    ]) {
      const err = (await refused.enroll(enroll).catch((e: unknown) => e)) as ServiceError;
      expect(status[err.code]).toBe('UNAVAILABLE');
    }
  });
});
