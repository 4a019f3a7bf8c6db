import { describe, expect, it } from 'vitest';
import { DeviceState } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { AgentMetrics } from '../metrics.js';
import { InferenceLatency } from '../serving/inference-latency.js';
import { ModelSlot } from '../serving/model-slot.js';
import type { ServedModel } from '../serving/served-model.js';
import { DeviceActivity } from './device-activity.js';

describe('DeviceActivity', () => {
  const served = {
    manifest: { modelId: 'm', variant: 'int8', version: 4, model: { sha256: 'ab'.repeat(32) } },
    retire: () => Promise.resolve(),
  } as unknown as ServedModel;

  it('reports the step under way, else degraded, else serving or idle', async () => {
    const slot = new ModelSlot();
    const activity = new DeviceActivity(
      slot,
      new InferenceLatency(new AgentMetrics('0').inferenceLatency),
    );
    expect(activity.report()).toEqual({
      state: DeviceState.DEVICE_STATE_IDLE,
      activeModel: undefined,
      inferenceLatency: undefined,
    });
    slot.swap(served);
    expect(activity.report()).toMatchObject({
      state: DeviceState.DEVICE_STATE_SERVING,
      activeModel: { modelId: 'm', variant: 'int8', version: 4, sha256: 'ab'.repeat(32) },
    });
    activity.setProblem('endpoint', 'port taken');
    activity.setProblem('models', 'v5 cannot start');
    expect([activity.state, activity.degraded]).toEqual([
      DeviceState.DEVICE_STATE_DEGRADED,
      'port taken; v5 cannot start',
    ]);
    const during = await activity.during(DeviceState.DEVICE_STATE_DOWNLOADING, () =>
      Promise.resolve(activity.state),
    );
    expect(during).toBe(DeviceState.DEVICE_STATE_DOWNLOADING);
    activity.setProblem('models', undefined);
    expect(activity.state).toBe(DeviceState.DEVICE_STATE_DEGRADED);
    activity.setProblem('endpoint', undefined);
    expect(activity.state).toBe(DeviceState.DEVICE_STATE_SERVING);
  });
});
