import { Kvm } from '@nats-io/kv';
import { ApplicationFailure } from '@temporalio/activity';
import { deviceEventOf } from '../../common/census.js';
import { deriveHardwareClass, type HardwareClass } from '../../common/hardware/index.js';
import type { HardwareProfile } from '../../common/hardware/index.js';
import { histogramQuantile } from '../../common/latency-histogram.js';
import { KV_BUCKETS } from '../../common/names.js';
import { CanaryDraw } from '../decisions/canaries.js';
import { bucketOptions, onceSucceeded, type NatsConnection } from '../../common/nats.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { cancellation, heartbeat, KV_CONCURRENCY, mapLimit, scanBucket } from './bulk.js';

/**
 * The fleet as the orchestrator sees it: the device records the control plane's registry keeps
 * in the devices KV bucket. Read-only here; only the control plane writes them. Nothing here
 * returns a list of a class's devices: counts, and bounded samples (canaries).
 */

/** The fields of the registry's DeviceRecord (services/control-plane/registry) read here. */
interface StoredDevice {
  deviceId: string;
  hardwareClass: string;
  profile: HardwareProfile;
  state?: string;
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
  online: number;
  offline: number;
}

export interface FleetSummary {
  takenAt: string;
  classes: FleetClass[];
}

/** What a device reports about the model it runs, for judging canaries. */
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
  /** How often a waiting activity reads the devices again. */
  pollMs: number;
}

/** A device that is online and not degraded may be a canary. */
const DEGRADED = 'DEVICE_STATE_DEGRADED';

/** Status events that end a device's activation of a model. */
const SETTLING_EVENTS = new Set(['activated', 'health_check_failed', 'rolled_back', 'refused']);

export function createFleetActivities(nats: NatsConnection, options: FleetActivityOptions) {
  const devices = onceSucceeded(() =>
    new Kvm(nats).create(KV_BUCKETS.devices, bucketOptions({ history: 1 })),
  );
  const isOnline = (d: StoredDevice, now: number) =>
    now - Date.parse(d.lastSeenAt) <= options.onlineWithinMs;

  /** The model each of a few devices (canaries) runs now, its last status and its latency. */
  const deviceModelStates = async (input: {
    deviceIds: string[];
    minServingSamples: number;
  }): Promise<DeviceModelState[]> => {
    if (input.deviceIds.length > 1_000) {
      throw ApplicationFailure.nonRetryable(
        `deviceModelStates reads a bounded sample of devices, not ${input.deviceIds.length}`,
        'TooManyDevices',
      );
    }
    const kv = await devices();
    const found = await mapLimit(input.deviceIds, KV_CONCURRENCY, async (id) => {
      const entry = await kv.get(id);
      return entry?.operation === 'PUT' ? entry.json<StoredDevice>() : undefined;
    });
    return found
      .filter((d): d is StoredDevice => d !== undefined)
      .map((d) => {
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
  };

  return {
    /** How many devices each hardware class has, online and not; one streamed read of the registry. */
    async fleetSummary(input: { hardwareClasses?: string[] }): Promise<FleetSummary> {
      const now = Date.now();
      const classes = new Map<string, FleetClass>();
      await scanBucket<StoredDevice>(await devices(), (_, device) => {
        if (input.hardwareClasses && !input.hardwareClasses.includes(device.hardwareClass)) return;
        let cls = classes.get(device.hardwareClass);
        if (!cls) {
          cls = {
            key: device.hardwareClass,
            hardwareClass: deriveHardwareClass(device.profile),
            online: 0,
            offline: 0,
          };
          classes.set(device.hardwareClass, cls);
        }
        if (isOnline(device, now)) cls.online += 1;
        else cls.offline += 1;
      });
      return {
        takenAt: new Date(now).toISOString(),
        classes: [...classes.values()].sort((a, b) => a.key.localeCompare(b.key)),
      };
    },

    /**
     * Canaries for a class: the named devices that are online in it, then a random sample of its
     * healthy online devices drawn with `seed`, one per cohort before any cohort gives a second.
     * A device cannot make itself a canary by its name: the draw is the rollout's, not the order
     * of ids.
     */
    async pickCanaries(input: {
      hardwareClass: string;
      count: number;
      seed: number;
      named?: string[];
    }): Promise<{ canaries: string[]; missingNamed: string[] }> {
      const now = Date.now();
      const draw = new CanaryDraw(input.count, input.seed, input.named);
      await scanBucket<StoredDevice>(await devices(), (_, d) => {
        if (d.hardwareClass !== input.hardwareClass || !isOnline(d, now)) return;
        draw.offer(d.deviceId, d.state !== DEGRADED);
      });
      return draw.result();
    },

    /**
     * Waits until each of a few devices (canaries) reported how its activation of `variant` for
     * the rollout ended, or the timeout passes; heartbeats meanwhile. Returns their states.
     */
    async awaitDevicesSettled(input: {
      rolloutId: string;
      variant: string;
      deviceIds: string[];
      /** Give up waiting at this time (ISO): the workflow's, so a retried attempt keeps it. */
      until: string;
      minServingSamples: number;
    }): Promise<DeviceModelState[]> {
      const deadline = Date.parse(input.until);
      const signal = cancellation();
      const settled = (d: DeviceModelState) =>
        d.lastStatus?.rolloutId === input.rolloutId &&
        d.lastStatus.variant === input.variant &&
        SETTLING_EVENTS.has(deviceEventOf(d.lastStatus.event));
      for (;;) {
        const states = await deviceModelStates(input);
        const done = states.filter(settled).length;
        if (done === input.deviceIds.length || Date.now() >= deadline) return states;
        heartbeat({ settled: done });
        await sleep(options.pollMs, undefined, { signal });
      }
    },

    deviceModelStates,
  };
}
