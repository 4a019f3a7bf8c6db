import { Metadata, status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { DeviceSession } from '../fleet/device-session.js';
import { FleetCallError } from '../fleet/fleet-client.js';
import { Backoff } from './backoff.js';
import { HeartbeatLoop } from './heartbeat-loop.js';

const callError = (method: string, code: status, details: string) =>
  new FleetCallError(method, 'cp:50051', {
    name: 'Error',
    message: details,
    code,
    details,
    metadata: new Metadata(),
  });

const REVOKED =
  'device d-1 was revoked by an operator at 2026-01-01T00:00:00.000Z: stolen; nothing this device can do lifts it';

/** A session whose heartbeats answer from `answers` in turn (then succeed), counting calls. */
function fakeSession(answers: (Error | undefined)[]) {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }),
    },
  );
  const calls = { heartbeats: [] as number[], enrollments: 0 };
  const session = {
    logger,
    heartbeat: () => {
      calls.heartbeats.push(Date.now());
      const answer = answers.shift();
      return answer ? Promise.reject(answer) : Promise.resolve({ nextHeartbeatSeconds: 60 });
    },
    enroll: () => {
      calls.enrollments += 1;
      return Promise.resolve({});
    },
  } as unknown as DeviceSession;
  return { session, calls, lines };
}

describe('HeartbeatLoop', () => {
  it('enrols again when the credential is rejected', async () => {
    const { session, calls } = fakeSession([
      callError('Heartbeat', status.UNAUTHENTICATED, 'device d-1 is not in the fleet registry'),
    ]);
    const loop = new HeartbeatLoop({ session, backoff: new Backoff({ baseMs: 5, capMs: 10 }) });
    loop.start();
    await expect.poll(() => calls.heartbeats.length).toBe(2);
    await loop.stop();
    expect(calls.enrollments).toBe(1);
  });

  it('on a revocation: one error, heartbeats at the cap, no enrollment; then accepted again', async () => {
    const revoked = () => callError('Heartbeat', status.PERMISSION_DENIED, REVOKED);
    const { session, calls, lines } = fakeSession([revoked(), revoked(), revoked()]);
    const loop = new HeartbeatLoop({
      session,
      backoff: new Backoff({ baseMs: 1, capMs: 100, random: () => 0 }),
    });
    loop.start();
    await expect.poll(() => calls.heartbeats.length, { timeout: 2_000 }).toBe(2);
    expect(loop.revoked).toBe(true);
    await expect.poll(() => calls.heartbeats.length, { timeout: 2_000 }).toBe(4);
    expect(loop.revoked).toBe(false);
    await loop.stop();

    expect(calls.enrollments).toBe(0);
    // The cap (±10%), not the 1 ms base: full jitter with random() = 0 would retry at once.
    for (let i = 1; i < 4; i++) {
      expect(calls.heartbeats[i]! - calls.heartbeats[i - 1]!).toBeGreaterThanOrEqual(85);
    }
    const errors = lines.filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/an operator revoked this device; it will not enrol again/);
    expect(lines.some((l) => /accepts this device again/.test(l.msg))).toBe(true);
  });

  it('does not take another PERMISSION_DENIED for a revocation', () => {
    expect(callError('Heartbeat', status.PERMISSION_DENIED, 'admin credential').revoked).toBe(
      false,
    );
    expect(callError('Enroll', status.PERMISSION_DENIED, REVOKED).revoked).toBe(true);
    expect(callError('Enroll', status.UNAUTHENTICATED, REVOKED).revoked).toBe(false);
  });
});
