import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'vitest';
import { startTestControlPlane } from '../helpers/control-plane.js';
import { TestOrchestrator } from '../helpers/distribution.js';
import { startTestAgent } from '../helpers/agents.js';
import { testNats } from '../helpers/stack.js';

describe('stopping an agent', () => {
  it('stops cleanly at any point of its start-up, NATS connect and watch included', async () => {
    const cp = await startTestControlPlane();
    // With the bucket there, each agent connects to NATS and starts watching right after start.
    await TestOrchestrator.open(await testNats('orchestrator'), cp.dataDir);
    // Stopped a few milliseconds later each time, so the stops land in every phase; a stop that
    // misses one (an abort before a listener was added) hangs and fails the test by timeout.
    for (let attempt = 0; attempt < 30; attempt++) {
      const agent = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
      await sleep(attempt % 15);
      await agent.stop();
    }
  });
});
