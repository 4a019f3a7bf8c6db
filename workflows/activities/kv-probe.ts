import { Kvm } from '@nats-io/kv';
import { bucketOptions, type NatsConnection } from '../../common/nats.js';
import { KV_BUCKETS } from '../../common/names.js';
import type { SmokeResult } from '../../common/temporal-api.js';

/** Writes a value to the probe KV bucket and reads it back, proving JetStream KV works. */
export function createKvProbeActivity(nats: NatsConnection) {
  return async function probeKeyValue(key: string): Promise<SmokeResult['kv']> {
    const kv = await new Kvm(nats).create(KV_BUCKETS.probe, bucketOptions({ history: 1 }));
    const written = `written at ${new Date().toISOString()}`;
    const revision = await kv.put(key, written);
    const entry = await kv.get(key);
    if (!entry) throw new Error(`KV key ${key} vanished right after it was written`);
    return { bucket: KV_BUCKETS.probe, key, written, read: entry.string(), revision };
  };
}
