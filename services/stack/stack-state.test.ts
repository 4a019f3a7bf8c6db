import { once } from 'node:events';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadStackState, saveStackState, stablePort, STATE_FILE } from './stack-state.js';

let dir = '';
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('the embedded stack keeps its ports', () => {
  it('reuses the last port while it is free, and says so when it must take another', async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-state-'));
    const said: string[] = [];
    const first = await loadStackState(dir);
    const port = await stablePort(first, 'controlPlane', (m) => said.push(m));
    await saveStackState(dir, first);
    expect((await stat(join(dir, STATE_FILE))).mode & 0o777).toBe(0o600);

    const again = await loadStackState(dir);
    expect(await stablePort(again, 'controlPlane', (m) => said.push(m))).toBe(port);
    expect(said).toEqual([]);

    // Something else listens there now.
    const squatter = createServer().listen(port, '127.0.0.1');
    await once(squatter, 'listening');
    try {
      const moved = await stablePort(again, 'controlPlane', (m) => said.push(m));
      expect(moved).not.toBe(port);
      expect(again.ports.controlPlane).toBe(moved);
      expect(said).toEqual([expect.stringContaining(`port ${port} of the controlPlane is taken`)]);
    } finally {
      squatter.close();
    }
  });

  it('starts fresh without a state file, or with one that does not parse', async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeforge-state-'));
    expect(await loadStackState(dir)).toEqual({ ports: {} });
    await writeFile(join(dir, STATE_FILE), '{"ports": ');
    expect(await loadStackState(dir)).toEqual({ ports: {} });
  });
});
