import {
  deriveHardwareClass,
  HardwareProfileError,
  type HardwareProfile,
} from '../../../common/hardware/index.js';
import { profileFromProto } from '../../../common/fleet-api.js';
import {
  Accelerator_Kind,
  type HardwareProfile as ProtoHardwareProfile,
} from '../../../proto/gen/edgeforge/v1/hardware.pb.js';
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
import type {
  CreateEnrollmentTokenRequest,
  ListDevicesRequest,
} from '../../../proto/gen/edgeforge/v1/admin.pb.js';
import { verifyEnrollProof } from '../registry/device-key.js';
import { DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS } from '../registry/enrollment-store.js';
import { InvalidArgumentError } from './errors.js';

// Every request field is checked here before any handler logic runs; a failure names the field,
// with the proto's name for it (`profile.memory_bytes`), whatever the TypeScript spells.

const ID = /^[A-Za-z0-9_.-]+$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MAX_HISTOGRAM_BUCKETS = 64;
const MAX_BENCHMARK_ROUNDS = 1000;

// Fields that name a kind of thing (and may end up in a hardware class key, a metric label or a
// planner decision) are single tokens: unknown values that look right are taken (a new arch such
// as riscv64, a new execution provider), anything with spaces, control characters or punctuation
// is refused, so a client cannot mint label values or class keys with odd characters.
/** `uname -m` or Node spellings: x86_64, aarch64, armv7l, riscv64, x64; no '-' (the key's). */
export const ARCH = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
/** cpuinfo flag names: avx512_vnni, amx_int8, asimddp, i8mm. */
export const ISA_FEATURE = /^[A-Za-z0-9][A-Za-z0-9_]{0,31}$/;
/** ORT provider names (CPUExecutionProvider), or onnxruntime-node's backend name (rocm). */
export const EXECUTION_PROVIDER = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** Node's platform() or Python's platform.system(): linux, darwin, win32, Linux. */
export const OS_PLATFORM = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
/** Intel, AMD, ARM, NVIDIA, HygonGenuine, "implementer 0xc0" (common/hardware/cpuinfo.ts). */
export const CPU_VENDOR = /^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$/;
/** 1.22.0, 1.23.0-dev+abc, 0.1.0. */
export const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$/;
/** Control, format (zero-width, bidi), separator and private characters; U+FFFD (bad UTF-8). */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Zl}\p{Zp}\uFFFD]/u;
/** Hardware class keys are single NATS subject tokens (common/names.ts). */
const CLASS_KEY = /^[A-Za-z0-9_-]{1,128}$/;

/** `accelerators[0].computeCapability` → `accelerators[0].compute_capability`. */
export function protoFieldPath(path: string): string {
  return path.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

function token(field: string, value: string, pattern: RegExp): string {
  if (!pattern.test(value)) {
    throw new InvalidArgumentError(
      field,
      `is ${show(value)}; expected a value matching ${pattern}`,
    );
  }
  return value;
}

/** Names, models, free text: any printable characters, no control or invisible ones. */
function printable(field: string, value: string): string {
  const bad = UNPRINTABLE.exec(value);
  if (bad) {
    const code = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw new InvalidArgumentError(
      field,
      `holds the unprintable character U+${code} at ${bad.index}; expected printable text`,
    );
  }
  return value;
}

/** A value as the message shows it: JSON-quoted (control characters escaped), cut at 60. */
function show(value: string): string {
  const json = Array.from(JSON.stringify(value));
  return json.length > 60 ? `${json.slice(0, 57).join('')}..."` : json.join('');
}

function text(field: string, value: string, max: number, pattern?: RegExp): string {
  if (value.trim() === '') throw new InvalidArgumentError(field, 'is required');
  if (value.length > max)
    throw new InvalidArgumentError(field, `is ${value.length} characters; at most ${max}`);
  if (pattern && !pattern.test(value))
    throw new InvalidArgumentError(field, `must match ${pattern}`);
  return value;
}

function integer(field: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `is ${value}; expected an integer from ${min} to ${max}`);
  }
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

/** The identifier fields of a profile, before the shape checks of validateHardwareProfile. */
function profileTokens(field: string, value: ProtoHardwareProfile): void {
  const at = (name: string) => `${field}.${name}`;
  // Empty ones are left to validateHardwareProfile, which says "required" in its own words.
  const optional = (name: string, v: string, check: (f: string, v: string) => string) => {
    if (v !== '') check(at(name), v);
  };
  optional('arch', value.arch, (f, v) => token(f, v, ARCH));
  optional('cpu_vendor', value.cpuVendor, (f, v) => token(f, v, CPU_VENDOR));
  optional('cpu_model', value.cpuModel, printable);
  optional('device_model', value.deviceModel, printable);
  value.isaFeatures.forEach((v, i) => token(at(`isa_features[${i}]`), v, ISA_FEATURE));
  value.accelerators.forEach((a, i) => {
    enumValue(at(`accelerators[${i}].kind`), a.kind, Accelerator_Kind);
    optional(`accelerators[${i}].name`, a.name, printable);
  });
  if (value.onnxRuntime) {
    const ort = value.onnxRuntime;
    optional('onnx_runtime.version', ort.version, (f, v) => token(f, v, VERSION));
    ort.executionProviders.forEach((v, i) =>
      token(at(`onnx_runtime.execution_providers[${i}]`), v, EXECUTION_PROVIDER),
    );
  }
  if (value.os) {
    optional('os.platform', value.os.platform, (f, v) => token(f, v, OS_PLATFORM));
    optional('os.release', value.os.release, printable);
  }
}

function profile(field: string, value: ProtoHardwareProfile | undefined): HardwareProfile {
  if (!value) throw new InvalidArgumentError(field, 'is required');
  profileTokens(field, value);
  let checked: HardwareProfile;
  try {
    checked = profileFromProto(value);
  } catch (err) {
    if (err instanceof HardwareProfileError) {
      // Its message names the TypeScript field ("memoryBytes"); say it with the proto's name.
      const problem = err.message.replace(/^hardware profile field "[^"]*" /, '');
      throw new InvalidArgumentError(`${field}.${protoFieldPath(err.field)}`, problem);
    }
    throw err;
  }
  // The checks above keep every part of the key a token; this keeps it so if they ever drift.
  const key = deriveHardwareClass(checked).key;
  if (!CLASS_KEY.test(key)) {
    throw new InvalidArgumentError(field, `gives the hardware class ${show(key)}, not a token`);
  }
  return checked;
}

/** How far signed_at_unix_ms may be from the control plane's clock, either way. */
export const MAX_ENROLL_SKEW_MS = 5 * 60 * 1000;

/** A time in ms as a message shows it: ISO 8601 where a Date holds it. */
function showTime(ms: number): string {
  return Math.abs(ms) <= 8.64e15 ? `${ms} (${new Date(ms).toISOString()})` : String(ms);
}

/**
 * The device key and its proof of possession (fleet.proto, EnrollRequest fields 5 to 7): null
 * when the request has none (an agent from before device keys); otherwise a 32-byte key, a
 * 64-byte signature that verifies over this request's name, time and token, and a time within
 * MAX_ENROLL_SKEW_MS of `nowMs`.
 */
function deviceKey(
  req: EnrollRequest,
  deviceName: string,
  enrollmentToken: string,
  nowMs: number,
): { publicKey: string; signedAtUnixMs: number } | null {
  const key = req.devicePublicKey ?? Buffer.alloc(0);
  const signature = req.keySignature ?? Buffer.alloc(0);
  const signedAt = req.signedAtUnixMs ?? 0;
  if (key.length === 0) {
    if (signature.length > 0) {
      throw new InvalidArgumentError('device_public_key', 'is required with key_signature');
    }
    if (signedAt !== 0) {
      throw new InvalidArgumentError('device_public_key', 'is required with signed_at_unix_ms');
    }
    return null;
  }
  if (key.length !== 32) {
    throw new InvalidArgumentError(
      'device_public_key',
      `is ${key.length} bytes; expected a raw 32-byte ed25519 public key`,
    );
  }
  if (signature.length !== 64) {
    throw new InvalidArgumentError(
      'key_signature',
      signature.length === 0
        ? 'is required with device_public_key'
        : `is ${signature.length} bytes; expected a 64-byte ed25519 signature`,
    );
  }
  if (signedAt === 0) {
    throw new InvalidArgumentError('signed_at_unix_ms', 'is required with device_public_key');
  }
  integer('signed_at_unix_ms', signedAt, 1, Number.MAX_SAFE_INTEGER);
  const skew = signedAt - nowMs;
  if (Math.abs(skew) > MAX_ENROLL_SKEW_MS) {
    throw new InvalidArgumentError(
      'signed_at_unix_ms',
      `is ${showTime(signedAt)}, ${Math.round(Math.abs(skew) / 1000)} s ` +
        `${skew > 0 ? 'ahead of' : 'behind'} the control plane's clock (${showTime(nowMs)}); ` +
        `at most ${MAX_ENROLL_SKEW_MS / 1000} s either way: set the device's clock (NTP)`,
    );
  }
  if (
    !verifyEnrollProof(key, signature, { deviceName, signedAtUnixMs: signedAt, enrollmentToken })
  ) {
    throw new InvalidArgumentError(
      'key_signature',
      "does not verify with device_public_key over this request's device_name, " +
        'signed_at_unix_ms and enrollment_token (the proof string in fleet.proto)',
    );
  }
  return { publicKey: Buffer.from(key).toString('base64'), signedAtUnixMs: signedAt };
}

export function validateEnroll(req: EnrollRequest, nowMs: number = Date.now()) {
  const enrollmentToken = text('enrollment_token', req.enrollmentToken, 512);
  const deviceName = text('device_name', req.deviceName, 128, ID);
  return {
    enrollmentToken,
    deviceName,
    profile: profile('profile', req.profile),
    agentVersion: text('agent_version', req.agentVersion, 64, VERSION),
    deviceKey: deviceKey(req, deviceName, enrollmentToken, nowMs),
  };
}

export function validateActiveModel(field: string, model: ActiveModel | undefined) {
  if (!model) return null;
  return {
    modelId: text(`${field}.model_id`, model.modelId, 128, ID),
    variant: text(`${field}.variant`, model.variant, 64, ID),
    version: integer(`${field}.version`, model.version, 0, Number.MAX_SAFE_INTEGER),
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
  h.bucketCounts.forEach((c, i) =>
    integer(`${field}.bucket_counts[${i}]`, c, 0, Number.MAX_SAFE_INTEGER),
  );
  integer(`${field}.count`, h.count, 0, Number.MAX_SAFE_INTEGER);
  const total = h.bucketCounts.reduce((sum, c) => sum + c, 0);
  if (!Number.isSafeInteger(total)) {
    throw new InvalidArgumentError(`${field}.bucket_counts`, 'add up to more than 2^53-1');
  }
  if (total !== h.count) {
    throw new InvalidArgumentError(
      `${field}.count`,
      `is ${h.count} but the buckets add up to ${total}`,
    );
  }
  finite(`${field}.sum_seconds`, h.sumSeconds, 0);
  // Each observation lies in its bucket (above the bound before, at most its own), so the sum
  // lies between Σ count × lower bound and Σ count × upper bound (unbounded with any in +Inf).
  // The slack covers the agent's float sums (adding, and subtracting what was sent).
  let lowest = 0;
  let highest = 0;
  h.bucketCounts.forEach((c, i) => {
    if (c === 0) return; // 0 × Infinity is NaN
    lowest += c * (i === 0 ? 0 : bounds[i - 1]!);
    highest += c * (i < bounds.length ? bounds[i]! : Infinity);
  });
  const slack = (x: number) => Math.abs(x) * 1e-6 + 1e-6;
  if (h.sumSeconds < lowest - slack(lowest) || h.sumSeconds > highest + slack(highest)) {
    throw new InvalidArgumentError(
      `${field}.sum_seconds`,
      `is ${h.sumSeconds}, but ${h.count} observations in these buckets add up to ` +
        `${lowest === highest ? lowest : `between ${lowest} and ${highest}`} seconds`,
    );
  }
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
  if (latency.roundP95Ms.length > MAX_BENCHMARK_ROUNDS) {
    throw new InvalidArgumentError(
      'latency.round_p95_ms',
      `has ${latency.roundP95Ms.length} entries; at most ${MAX_BENCHMARK_ROUNDS}`,
    );
  }
  latency.roundP95Ms.forEach((v, i) => finite(`latency.round_p95_ms[${i}]`, v, 0));
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

/** Pending enrolment ids: `<device id>.<16 hex>` (registry/enrollment-store.ts). */
const PENDING_ID = /^[A-Za-z0-9_-]{1,64}\.[0-9a-f]{16}$/;

export function validatePendingId(pendingId: string): string {
  if (pendingId === '') throw new InvalidArgumentError('pending_id', 'is required');
  if (!PENDING_ID.test(pendingId)) {
    throw new InvalidArgumentError(
      'pending_id',
      `is ${show(pendingId)}; expected an id as \`edgeforge fleet pending\` lists them`,
    );
  }
  return pendingId;
}

export function validateCreateEnrollmentToken(req: CreateEnrollmentTokenRequest) {
  return {
    deviceName: text('device_name', req.deviceName, 128, ID),
    ttlSeconds:
      req.ttlSeconds === 0
        ? DEFAULT_TOKEN_TTL_SECONDS
        : integer('ttl_seconds', req.ttlSeconds, 1, MAX_TOKEN_TTL_SECONDS),
  };
}
