import { Kvm } from '@nats-io/kv';
import { beforeEach, describe, expect, it } from 'vitest';
import { KV_BUCKETS } from '../../common/names.js';
import { eventually, startTestAgent } from '../helpers/agents.js';
import { resetFleetState, startTestControlPlane } from '../helpers/control-plane.js';
import { testNats } from '../helpers/stack.js';

describe('an agent that cannot watch its desired state', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('reports itself DEGRADED (so it is never drawn as a canary) until the watch works again', async () => {
    const cp = await startTestControlPlane();
    const nats = await testNats('orchestrator');
    // The bucket goes away after the control plane created it: every watch attempt fails.
    await (await new Kvm(nats).open(KV_BUCKETS.desiredState)).destroy();
    const agent = await startTestAgent(cp.address, { cpuinfo: 'raspberry-pi-4' });
    const deviceId = agent.deviceId!;
    await eventually(() => expect(cp.registry.get(deviceId)?.state).toBe('DEVICE_STATE_DEGRADED'));
    await new Kvm(nats).create(KV_BUCKETS.desiredState);
    await eventually(() => expect(cp.registry.get(deviceId)?.state).toBe('DEVICE_STATE_IDLE'));
  });
});
