import { HardwareProfileError, type HardwareProfile } from '../../../common/hardware/index.js';
import { profileFromProto } from '../../../common/fleet-api.js';
import type { HardwareProfile as ProtoHardwareProfile } from '../../../proto/gen/edgeforge/v1/hardware.pb.js';
import {
  DeviceState,
  StatusEvent,
  type ActiveModel,
  type EnrollRequest,
  type HeartbeatRequest,
  type LatencyHistogramDelta,
  type ReportBenchmarkRequest,
  type ReportStatusRequest,
} from '../../../proto/gen/edgeforge/v1/fleet.pb.js';
import type { ListDevicesRequest } from '../../../proto/gen/edgeforge/v1/admin.pb.js';
import { InvalidArgumentError } from './errors.js';

// Every request field is checked here before any handler logic runs; a failure names the field.

const ID = /^[A-Za-z0-9_.-]+$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MAX_HISTOGRAM_BUCKETS = 64;

function text(field: string, value: string, max: number, pattern?: RegExp): string {
  if (value.trim() === '') throw new InvalidArgumentError(field, 'is required');
  if (value.length > max)
    throw new InvalidArgumentError(field, `is ${value.length} characters; at most ${max}`);
  if (pattern && !pattern.test(value))
    throw new InvalidArgumentError(field, `must match ${pattern}`);
  return value;
}

function finite(field: string, value: number, min: number, max = Number.MAX_VALUE): number {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `is ${value}; expected a number from ${min} to ${max}`);
  }
  return value;
}

function enumValue<E extends Record<string, string | number>>(
  field: string,
  value: number,
  e: E,
): number {
  if (value <= 0 || !(value in e) || value === -1) {
    const names = Object.keys(e).filter(
      (k) => Number.isNaN(Number(k)) && !/UNSPECIFIED|UNRECOGNIZED/.test(k),
    );
    throw new InvalidArgumentError(field, `is ${value}; expected one of ${names.join(', ')}`);
  }
  return value;
}

function profile(field: string, value: ProtoHardwareProfile | undefined): HardwareProfile {
  if (!value) throw new InvalidArgumentError(field, 'is required');
  try {
    return profileFromProto(value);
  } catch (err) {
    if (err instanceof HardwareProfileError)
      throw new InvalidArgumentError(`${field}.${err.field}`, err.message);
    throw err;
  }
}

export function validateEnroll(req: EnrollRequest) {
  return {
    enrollmentToken: text('enrollment_token', req.enrollmentToken, 512),
    deviceName: text('device_name', req.deviceName, 128, ID),
    profile: profile('profile', req.profile),
    agentVersion: text('agent_version', req.agentVersion, 64),
  };
}

export function validateActiveModel(field: string, model: ActiveModel | undefined) {
  if (!model) return null;
  return {
    modelId: text(`${field}.model_id`, model.modelId, 128, ID),
    variant: text(`${field}.variant`, model.variant, 64, ID),
    version: finite(`${field}.version`, model.version, 0, Number.MAX_SAFE_INTEGER),
    sha256: text(`${field}.sha256`, model.sha256, 64, SHA256),
  };
}

export function validateLatencyHistogram(field: string, h: LatencyHistogramDelta | undefined) {
  if (!h) return null;
  const bounds = h.bucketUpperBounds;
  if (bounds.length === 0 || bounds.length > MAX_HISTOGRAM_BUCKETS) {
    throw new InvalidArgumentError(
      `${field}.bucket_upper_bounds`,
      `has ${bounds.length} entries; expected 1 to ${MAX_HISTOGRAM_BUCKETS}`,
    );
  }
  bounds.forEach((b, i) => {
    finite(`${field}.bucket_upper_bounds[${i}]`, b, 0);
    if (i > 0 && b <= (bounds[i - 1] ?? 0)) {
      throw new InvalidArgumentError(
        `${field}.bucket_upper_bounds[${i}]`,
        'must be larger than the one before',
      );
    }
  });
  if (h.bucketCounts.length !== bounds.length + 1) {
    throw new InvalidArgumentError(
      `${field}.bucket_counts`,
      `has ${h.bucketCounts.length} entries; expected one per bound plus +Inf (${bounds.length + 1})`,
    );
  }
  const total = h.bucketCounts.reduce((sum, c) => sum + c, 0);
  if (total !== h.count) {
    throw new InvalidArgumentError(
      `${field}.count`,
      `is ${h.count} but the buckets add up to ${total}`,
    );
  }
  finite(`${field}.sum_seconds`, h.sumSeconds, 0);
  return h;
}

export function validateHeartbeat(req: HeartbeatRequest) {
  return {
    state: enumValue('state', req.state, DeviceState),
    activeModel: validateActiveModel('active_model', req.activeModel),
    inferenceLatency: validateLatencyHistogram('inference_latency', req.inferenceLatency),
    profile: req.profile ? profile('profile', req.profile) : null,
  };
}

export function validateReportBenchmark(req: ReportBenchmarkRequest) {
  const base = {
    rolloutId: text('rollout_id', req.rolloutId, 128, ID),
    variant: text('variant', req.variant, 64, ID),
    modelSha256: text('model_sha256', req.modelSha256, 64, SHA256),
  };
  if (req.error) return { ...base, error: text('error', req.error, 4096) };
  const latency = req.latency;
  if (!latency) throw new InvalidArgumentError('latency', 'is required unless error is set');
  const ordered: [string, number][] = [
    ['latency.p50_ms', latency.p50Ms],
    ['latency.p90_ms', latency.p90Ms],
    ['latency.p95_ms', latency.p95Ms],
    ['latency.p99_ms', latency.p99Ms],
  ];
  ordered.forEach(([field, value], i) => {
    finite(field, value, 0);
    if (i > 0 && value < (ordered[i - 1]?.[1] ?? 0)) {
      throw new InvalidArgumentError(field, `is below ${ordered[i - 1]?.[0]}`);
    }
  });
  if (latency.runs < 1) throw new InvalidArgumentError('latency.runs', 'must be at least 1');
  finite('latency.mean_ms', latency.meanMs, 0);
  finite('latency.cv', latency.cv, 0);
  finite('session_load_ms', req.sessionLoadMs, 0);
  finite('throughput_per_second', req.throughputPerSecond, 0);
  finite('accuracy', req.accuracy, 0, 1);
  finite('top1_agreement', req.top1Agreement, 0, 1);
  if (req.threads < 1 || req.threads > 4096)
    throw new InvalidArgumentError('threads', `is ${req.threads}; expected 1 to 4096`);
  return { ...base, error: '' };
}

export function validateReportStatus(req: ReportStatusRequest) {
  return {
    event: enumValue('event', req.event, StatusEvent),
    rolloutId: req.rolloutId ? text('rollout_id', req.rolloutId, 128, ID) : '',
    variant: req.variant ? text('variant', req.variant, 64, ID) : '',
    activeModel: validateActiveModel('active_model', req.activeModel),
    detail: req.detail.length > 4096 ? text('detail', req.detail, 4096) : req.detail,
  };
}

export const MAX_PAGE_SIZE = 1000;

export function validateListDevices(req: ListDevicesRequest) {
  if (req.pageSize > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError('page_size', `is ${req.pageSize}; at most ${MAX_PAGE_SIZE}`);
  }
  return {
    hardwareClass: req.hardwareClass ? text('hardware_class', req.hardwareClass, 128, ID) : '',
    pageSize: req.pageSize || 100,
    pageToken: req.pageToken ? text('page_token', req.pageToken, 256, /^[A-Za-z0-9_-]+$/) : '',
  };
}
