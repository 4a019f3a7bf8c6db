import { describe, expect, it } from 'vitest';
import { eventually } from '../../test/helpers/agents.js';
import { ManagedProcess } from './managed-process.js';
import { Supervisor } from './supervisor.js';

/** A real child process that runs for `ms` and exits with `code`. */
function child(ms: number, code = 3) {
  const proc = new ManagedProcess({
    name: 'child',
    command: process.execPath,
    args: ['-e', `console.log('up'); setTimeout(() => process.exit(${code}), ${ms})`],
  });
  return Promise.resolve({ process: proc, stop: () => proc.stop() });
}

const fast = { baseMs: 10, capMs: 20 };

/** A real child process serving /healthz: `ok`, `503`, or `hang` (accepts, never answers). */
async function healthChild(mode: 'ok' | '503' | 'hang') {
  const handler = {
    ok: "res.end('ok')",
    '503': "res.statusCode = 503; res.end('the worker is FAILED')",
    hang: '',
  }[mode];
  const proc = new ManagedProcess({
    name: 'child',
    command: process.execPath,
    args: [
      '-e',
      `const s = require('node:http').createServer((req, res) => { ${handler} });` +
        "s.listen(0, '127.0.0.1', () => console.log('port ' + s.address().port));",
    ],
  });
  const [, port] = await proc.waitForLine(/^port (\d+)$/, 10_000);
  return {
    process: proc,
    stop: () => proc.stop(),
    healthUrl: `http://127.0.0.1:${port}/healthz`,
  };
}

describe('the stack supervisor', () => {
  it('starts a part that died again, and says so', async () => {
    const said: string[] = [];
    let starts = 0;
    const supervisor = new Supervisor({
      say: (m) => said.push(m),
      onGiveUp: () => {},
      backoff: fast,
    });
    await supervisor.add('worker', () => {
      starts += 1;
      // Dies once, soon; then stays up.
      return child(starts === 1 ? 50 : 60_000);
    });
    await eventually(() => expect(supervisor.restarts.get('worker')).toBe(1));
    expect(said.join('\n')).toMatch(/worker exited \(code 3\): restarting it in/);
    expect(said).toContain('worker is running again');
    await supervisor.stopAll();
    expect(starts).toBe(2);
  });

  it('gives up on a part that keeps dying, with its last output', async () => {
    const gaveUp: string[] = [];
    const supervisor = new Supervisor({
      say: () => {},
      onGiveUp: (part, reason) => gaveUp.push(`${part}: ${reason}`),
      maxRestarts: 2,
      backoff: fast,
    });
    await supervisor.add('flapper', () => child(10));
    await eventually(() => expect(gaveUp).toHaveLength(1));
    expect(gaveUp[0]).toMatch(/^flapper: flapper died 3 times in a row; its last output:\nup/);
    expect(supervisor.restarts.get('flapper')).toBe(2);
    await supervisor.stopAll();
  });

  it('kills and restarts a part that is up but hung or unhealthy, and says why', async () => {
    const said: string[] = [];
    let starts = 0;
    const supervisor = new Supervisor({
      say: (m) => said.push(m),
      onGiveUp: () => {},
      backoff: fast,
      probe: { intervalMs: 20, timeoutMs: 200, failures: 2 },
    });
    await supervisor.add('worker', () => {
      starts += 1;
      return healthChild(starts === 1 ? 'hang' : starts === 2 ? '503' : 'ok');
    });
    await eventually(() => expect(supervisor.restarts.get('worker')).toBe(2), 20_000);
    expect(supervisor.healthKills.get('worker')).toBe(2);
    const log = said.join('\n');
    expect(log).toMatch(
      /worker failed its health check 2 times in a row \(http:\/\/127\.0\.0\.1:\d+\/healthz: no answer in 0\.2 s\): killing it/,
    );
    expect(log).toMatch(/health check 2 times in a row \(.*: HTTP 503 the worker is FAILED\)/);
    // The healthy third instance is left alone.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(starts).toBe(3);
    await supervisor.stopAll();
  });

  it('does not restart what it stops', async () => {
    let starts = 0;
    const supervisor = new Supervisor({ say: () => {}, onGiveUp: () => {}, backoff: fast });
    await supervisor.add('worker', () => {
      starts += 1;
      return child(60_000);
    });
    await supervisor.stopAll();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(starts).toBe(1);
  });
});
