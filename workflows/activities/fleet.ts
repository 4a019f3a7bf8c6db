import { Kvm, type KV } from '@nats-io/kv';
import { deriveHardwareClass, type HardwareClass } from '../../common/hardware/index.js';
import type { HardwareProfile } from '../../common/hardware/index.js';
import { histogramQuantile } from '../../common/latency-histogram.js';
import { KV_BUCKETS } from '../../common/names.js';
import type { NatsConnection } from '../../common/nats.js';

/**
 * The fleet as the orchestrator sees it: the device records the control plane's registry keeps
 * in the devices KV bucket. Read-only here; only the control plane writes them.
 */

/** The fields of the registry's DeviceRecord (services/control-plane/registry) read here. */
interface StoredDevice {
  deviceId: string;
  hardwareClass: string;
  profile: HardwareProfile;
  lastSeenAt: string;
  activeModel: { modelId: string; variant: string; version: number; sha256: string } | null;
  lastStatus: {
    event: string;
    rolloutId: string;
    variant: string;
    detail: string;
    at: string;
  } | null;
  serving?: {
    modelSha256: string;
    bucketUpperBounds: number[];
    bucketCounts: number[];
    count: number;
  } | null;
}

export interface FleetClass {
  key: string;
  hardwareClass: HardwareClass;
  /** Online devices, by id. */
  devices: string[];
  offline: string[];
}

export interface FleetSnapshot {
  takenAt: string;
  classes: FleetClass[];
}

/** What a device reports about the model it runs, for judging activations and waves. */
export interface DeviceModelState {
  deviceId: string;
  activeSha256: string | null;
  lastStatus: StoredDevice['lastStatus'];
  /** Serving p95 of the model it runs now, when it served at least `minSamples` requests. */
  servingP95Ms: number | null;
  servingCount: number;
}

export interface FleetActivityOptions {
  /** A device heard from within this long counts as online. */
  onlineWithinMs: number;
}

async function devicesBucket(nats: NatsConnection): Promise<KV> {
  return new Kvm(nats).create(KV_BUCKETS.devices, { history: 1 });
}

async function readDevices(kv: KV, ids?: string[]): Promise<StoredDevice[]> {
  const keys = ids ?? [];
  if (!ids) for await (const key of await kv.keys()) keys.push(key);
  const devices: StoredDevice[] = [];
  for (const key of keys.sort()) {
    const entry = await kv.get(key);
    if (entry?.operation === 'PUT') devices.push(entry.json<StoredDevice>());
  }
  return devices;
}

export function createFleetActivities(nats: NatsConnection, options: FleetActivityOptions) {
  return {
    /** Devices grouped by hardware class, online ones apart from the rest. */
    async fleetSnapshot(input: { hardwareClasses?: string[] }): Promise<FleetSnapshot> {
      const now = Date.now();
      const classes = new Map<string, FleetClass>();
      for (const device of await readDevices(await devicesBucket(nats))) {
        if (input.hardwareClasses && !input.hardwareClasses.includes(device.hardwareClass))
          continue;
        let cls = classes.get(device.hardwareClass);
        if (!cls) {
          cls = {
            key: device.hardwareClass,
            hardwareClass: deriveHardwareClass(device.profile),
            devices: [],
            offline: [],
          };
          classes.set(device.hardwareClass, cls);
        }
        const online = now - Date.parse(device.lastSeenAt) <= options.onlineWithinMs;
        (online ? cls.devices : cls.offline).push(device.deviceId);
      }
      return {
        takenAt: new Date(now).toISOString(),
        classes: [...classes.values()].sort((a, b) => a.key.localeCompare(b.key)),
      };
    },

    /** The model each device runs now, its last status event, and its serving latency. */
    async deviceModelStates(input: {
      deviceIds: string[];
      minServingSamples: number;
    }): Promise<DeviceModelState[]> {
      const devices = await readDevices(await devicesBucket(nats), input.deviceIds);
      return devices.map((d) => {
        const serving =
          d.serving && d.activeModel && d.serving.modelSha256 === d.activeModel.sha256
            ? d.serving
            : null;
        const enough = serving !== null && serving.count >= input.minServingSamples;
        const p95Seconds = enough
          ? histogramQuantile(serving.bucketUpperBounds, serving.bucketCounts, 0.95)
          : null;
        return {
          deviceId: d.deviceId,
          activeSha256: d.activeModel?.sha256 ?? null,
          lastStatus: d.lastStatus,
          servingP95Ms:
            p95Seconds === null || !Number.isFinite(p95Seconds) ? null : p95Seconds * 1000,
          servingCount: serving?.count ?? 0,
        };
      });
    },
  };
}
