import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { describe, expect, it } from 'vitest';
import { connectNats } from '../../common/nats.js';
import { deviceDesiredKey, KV_BUCKETS, OBJECT_BUCKETS } from '../../common/names.js';
import { testNats, testStack } from '../helpers/stack.js';

describe('NATS permissions (deploy/nats)', () => {
  it('let agents read desired state and models, and refuse their writes', async () => {
    const central = await testNats('orchestrator');
    const desired = await new Kvm(central).create(KV_BUCKETS.desiredState, { history: 5 });
    const models = await new Objm(central).create(OBJECT_BUCKETS.models);
    const key = deviceDesiredKey('d-permissions');
    await desired.put(key, JSON.stringify({ kind: 'run' }));
    await models.putBlob({ name: 'permissions/model.onnx' }, new Uint8Array([1, 2, 3]));

    const agent = await connectNats(testStack().agentNatsUrl, { name: 'agent' });
    try {
      const agentKv = await new Kvm(agent).open(KV_BUCKETS.desiredState);
      expect((await agentKv.get(key))?.json()).toEqual({ kind: 'run' });
      const watch = await agentKv.watch({ key });
      for await (const entry of watch) {
        expect(entry.key).toBe(key);
        break;
      }
      const agentObj = await new Objm(agent).open(OBJECT_BUCKETS.models);
      expect([...((await agentObj.getBlob('permissions/model.onnx')) ?? [])]).toEqual([1, 2, 3]);

      await expect(agentKv.put(key, JSON.stringify({ kind: 'evil' }))).rejects.toThrow(
        /permission/i,
      );
      await expect(
        agentObj.putBlob({ name: 'permissions/evil.onnx' }, new Uint8Array([6])),
      ).rejects.toThrow();
      await expect(new Kvm(agent).create(KV_BUCKETS.devices)).rejects.toThrow();
      // Nothing the agent tried reached the server.
      expect((await desired.get(key))?.json()).toEqual({ kind: 'run' });
      expect(await models.info('permissions/evil.onnx')).toBeNull();
    } finally {
      await agent.close();
    }
  });

  it('refuse a wrong password with a message that names the server but not the secret', async () => {
    const url = testStack().natsUrl.replace(/:[^:@/]+@/, ':wrong@');
    await expect(connectNats(url, { name: 'intruder', timeoutMs: 2000 })).rejects.toThrow(
      /cannot reach NATS at nats:\/\/edgeforge:\*\*\*@127\.0\.0\.1/,
    );
  });
});
