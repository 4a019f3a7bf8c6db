import {
  DeviceState,
  type ActiveModel,
  type HeartbeatRequest,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import type { HeartbeatReport } from '../fleet/device-session.js';
import type { InferenceLatency } from '../serving/inference-latency.js';
import type { ModelSlot } from '../serving/model-slot.js';

/** What can degrade a device: its models (cleared by an activation) or its endpoint. */
export type DegradedBy = 'models' | 'endpoint' | 'desired-state';

/**
 * What the device is doing, for heartbeats: a model-lifecycle step while one runs (DOWNLOADING,
 * BENCHMARKING, ACTIVATING), else DEGRADED while it has a problem (its last good model could not
 * start, its inference endpoint could not bind), SERVING with a model, IDLE without one. Each beat also carries the active model and the inference
 * latencies the control plane has not accepted yet.
 */
export class DeviceActivity {
  readonly #slot: ModelSlot;
  readonly #latency: InferenceLatency;
  #step: DeviceState | undefined;
  readonly #problems = new Map<DegradedBy, string>();

  constructor(slot: ModelSlot, latency: InferenceLatency) {
    this.#slot = slot;
    this.#latency = latency;
  }

  get state(): DeviceState {
    if (this.#step !== undefined) return this.#step;
    if (this.#problems.size > 0) return DeviceState.DEVICE_STATE_DEGRADED;
    return this.#slot.current ? DeviceState.DEVICE_STATE_SERVING : DeviceState.DEVICE_STATE_IDLE;
  }

  /** Why the device is degraded, or undefined. */
  get degraded(): string | undefined {
    return this.#problems.size > 0 ? [...this.#problems.values()].join('; ') : undefined;
  }

  /** Records (or, with undefined, clears) a problem that degrades the device. */
  setProblem(part: DegradedBy, reason: string | undefined): void {
    if (reason === undefined) this.#problems.delete(part);
    else this.#problems.set(part, reason);
  }

  /** Runs one lifecycle step, reporting `state` while it runs. */
  async during<T>(state: DeviceState, step: () => Promise<T>): Promise<T> {
    const before = this.#step;
    this.#step = state;
    try {
      return await step();
    } finally {
      this.#step = before;
    }
  }

  report(): HeartbeatReport {
    return {
      state: this.state,
      activeModel: this.activeModel(),
      inferenceLatency: this.#latency.pending(),
    };
  }

  /** The control plane accepted a beat carrying `report`. */
  accepted(report: Pick<HeartbeatRequest, 'inferenceLatency'>): void {
    if (report.inferenceLatency) this.#latency.accepted(report.inferenceLatency);
  }

  activeModel(): ActiveModel | undefined {
    const m = this.#slot.current?.manifest;
    return (
      m && { modelId: m.modelId, variant: m.variant, version: m.version, sha256: m.model.sha256 }
    );
  }
}
