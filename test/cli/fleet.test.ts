import { beforeEach, describe, expect, it } from 'vitest';
import { profileToProto } from '../../common/fleet-api.js';
import { runCli } from '../helpers/cli.js';
import {
  ADMIN_TOKEN,
  ENROLLMENT_TOKEN,
  rawClients,
  resetFleetState,
  startTestControlPlane,
} from '../helpers/control-plane.js';
import { fixtureProfile } from '../helpers/profiles.js';
import { testNats } from '../helpers/stack.js';

describe('edgeforge fleet', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('lists and shows the enrolled devices', async () => {
    const cp = await startTestControlPlane();
    const { deviceId } = await rawClients(cp.address).enroll({
      enrollmentToken: ENROLLMENT_TOKEN,
      deviceName: 'gateway-7',
      profile: profileToProto(fixtureProfile('intel-celeron-j1900')),
      agentVersion: '0.1.0',
    });
    const env = { EDGEFORGE_CONTROL_PLANE: cp.address, EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN };

    const ls = await runCli(['fleet', 'ls'], env);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(
      new RegExp(`${deviceId}\\s+gateway-7\\s+x86_64-sse-nofp16-cpu-4g\\s+idle\\s+online`),
    );

    const json = await runCli(
      ['fleet', 'ls', '--json', '--class', 'x86_64-sse-nofp16-cpu-4g'],
      env,
    );
    expect(JSON.parse(json.stdout) as unknown).toEqual([
      expect.objectContaining({ deviceId, deviceName: 'gateway-7' }),
    ]);

    const show = await runCli(['fleet', 'show', deviceId], env);
    const shown = JSON.parse(show.stdout) as { deviceId: string; profile: { cpuModel: string } };
    expect(shown.deviceId).toBe(deviceId);
    expect(shown.profile.cpuModel).toContain('J1900');
  });

  it('explains an unreachable control plane, a wrong admin token and an unknown device', async () => {
    const cp = await startTestControlPlane();
    const down = await runCli(['fleet', 'ls'], {
      EDGEFORGE_CONTROL_PLANE: '127.0.0.1:1',
      EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/cannot reach the control plane at 127.0.0.1:1.*edgeforge up/s);

    const env = { EDGEFORGE_CONTROL_PLANE: cp.address };
    const wrong = await runCli(['fleet', 'ls'], {
      ...env,
      EDGEFORGE_ADMIN_TOKEN: 'nope-nope-nope-nope',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/UNAUTHENTICATED: the admin credential is wrong/);

    const missing = await runCli(['fleet', 'show', 'd-missing'], {
      ...env,
      EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/NOT_FOUND: no device d-missing/);

    const none = await runCli(['fleet', 'ls'], {
      EDGEFORGE_CONTROL_PLANE: '',
      EDGEFORGE_ADMIN_TOKEN: '',
    });
    expect(none.code).toBe(3);
    expect(none.stderr).toMatch(/no control plane to talk to/);
  });

  it('revokes and deletes a device', async () => {
    const cp = await startTestControlPlane();
    const { deviceId } = await rawClients(cp.address).enroll({
      enrollmentToken: ENROLLMENT_TOKEN,
      deviceName: 'kiosk-3',
      profile: profileToProto(fixtureProfile('intel-celeron-j1900')),
      agentVersion: '0.1.0',
    });
    const env = { EDGEFORGE_CONTROL_PLANE: cp.address, EDGEFORGE_ADMIN_TOKEN: ADMIN_TOKEN };

    const revoke = await runCli(['fleet', 'revoke', deviceId, '--reason', 'lost in transit'], env);
    expect(revoke.code, revoke.stderr).toBe(0);
    expect(revoke.stdout).toMatch(
      new RegExp(`^revoked ${deviceId} \\(kiosk-3\\) at \\S+: lost in transit\n$`),
    );
    const again = await runCli(['fleet', 'revoke', deviceId], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^already revoked .*: lost in transit/);

    const ls = await runCli(['fleet', 'ls'], env);
    expect(ls.stdout).toMatch(new RegExp(`${deviceId}\\s+kiosk-3\\s+\\S+\\s+idle\\s+revoked`));
    const show = await runCli(['fleet', 'show', deviceId], env);
    expect(JSON.parse(show.stdout)).toMatchObject({ revokedReason: 'lost in transit' });

    const del = await runCli(['fleet', 'delete', deviceId], env);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toBe(`deleted ${deviceId}\n`);
    const gone = await runCli(['fleet', 'delete', deviceId], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(new RegExp(`NOT_FOUND: no device ${deviceId}`));
    const unknown = await runCli(['fleet', 'revoke', 'd-missing'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/NOT_FOUND: no device d-missing/);
    const wrong = await runCli(['fleet', 'revoke', deviceId], {
      ...env,
      EDGEFORGE_ADMIN_TOKEN: 'nope-nope-nope-nope',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/UNAUTHENTICATED: the admin credential is wrong/);
    const usage = await runCli(['fleet', 'revoke'], env);
    expect(usage.code).toBe(2);
  });
});
