import type { ServiceDefinition } from '@grpc/grpc-js';
import { InvalidArgumentError } from './errors.js';

/**
 * Requests that cannot be decoded become INVALID_ARGUMENT naming the field, not grpc-js's
 * "INTERNAL: Error deserializing request".
 *
 * The generated codecs (ts-proto, `forceLong=number`) hold 64-bit integers as JS numbers and throw
 * on any value above 2^53-1 rather than round it; truncated or malformed bytes throw too. grpc-js
 * answers a throwing deserializer with INTERNAL and no detail. `withRequestDecoding` wraps each
 * method's deserializer: on a failure it walks the bytes itself to find the field at fault, and
 * hands the handler a marker that `unary()` turns into the INVALID_ARGUMENT (after
 * authentication, with the method's metrics and log line like any refused call).
 */

/** The largest integer a JS number holds exactly: 2^53-1. */
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

interface FieldSpec {
  /** The proto's name, as messages name fields. */
  name: string;
  /** A 64-bit integer: the decode refuses it beyond ±(2^53-1). */
  int?: 'uint64' | 'int64';
  /** A message field: the walk descends into it. */
  message?: string;
  repeated?: true;
}

/**
 * The fields of every message a request can carry, by proto field number: the 64-bit integers
 * (the ones a decode refuses) and the messages (to descend into) marked. Other fields are skipped
 * by wire type. request-decoding.test.ts checks this against proto/.
 */
export const REQUEST_FIELDS: Record<string, Record<number, FieldSpec>> = {
  'edgeforge.v1.EnrollRequest': {
    1: { name: 'enrollment_token' },
    2: { name: 'device_name' },
    3: { name: 'profile', message: 'edgeforge.v1.HardwareProfile' },
    4: { name: 'agent_version' },
    5: { name: 'device_public_key' },
    6: { name: 'key_signature' },
    7: { name: 'signed_at_unix_ms', int: 'int64' },
  },
  'edgeforge.v1.HardwareProfile': {
    1: { name: 'arch' },
    2: { name: 'cpu_vendor' },
    3: { name: 'cpu_model' },
    4: { name: 'cores' },
    5: { name: 'threads' },
    6: { name: 'isa_features', repeated: true },
    7: { name: 'memory_bytes', int: 'uint64' },
    8: { name: 'accelerators', message: 'edgeforge.v1.Accelerator', repeated: true },
    9: { name: 'onnx_runtime', message: 'edgeforge.v1.OnnxRuntimeInfo' },
    10: { name: 'os', message: 'edgeforge.v1.OperatingSystem' },
    11: { name: 'device_model' },
  },
  'edgeforge.v1.Accelerator': {
    1: { name: 'kind' },
    2: { name: 'name' },
    3: { name: 'compute_capability' },
    4: { name: 'memory_bytes', int: 'uint64' },
  },
  'edgeforge.v1.OnnxRuntimeInfo': {
    1: { name: 'version' },
    2: { name: 'execution_providers', repeated: true },
  },
  'edgeforge.v1.OperatingSystem': {
    1: { name: 'platform' },
    2: { name: 'release' },
  },
  'edgeforge.v1.HeartbeatRequest': {
    1: { name: 'state' },
    2: { name: 'active_model', message: 'edgeforge.v1.ActiveModel' },
    3: { name: 'inference_latency', message: 'edgeforge.v1.LatencyHistogramDelta' },
    4: { name: 'profile', message: 'edgeforge.v1.HardwareProfile' },
  },
  'edgeforge.v1.ActiveModel': {
    1: { name: 'model_id' },
    2: { name: 'variant' },
    3: { name: 'version', int: 'uint64' },
    4: { name: 'sha256' },
  },
  'edgeforge.v1.LatencyHistogramDelta': {
    1: { name: 'bucket_upper_bounds', repeated: true },
    2: { name: 'bucket_counts', int: 'uint64', repeated: true },
    3: { name: 'sum_seconds' },
    4: { name: 'count', int: 'uint64' },
  },
  'edgeforge.v1.ReportBenchmarkRequest': {
    1: { name: 'rollout_id' },
    2: { name: 'variant' },
    3: { name: 'model_sha256' },
    4: { name: 'session_load_ms' },
    5: { name: 'latency', message: 'edgeforge.v1.LatencyStats' },
    6: { name: 'throughput_per_second' },
    7: { name: 'memory_growth_bytes', int: 'int64' },
    8: { name: 'accuracy' },
    9: { name: 'top1_agreement' },
    10: { name: 'threads' },
    11: { name: 'error' },
  },
  'edgeforge.v1.LatencyStats': {
    1: { name: 'p50_ms' },
    2: { name: 'p90_ms' },
    3: { name: 'p95_ms' },
    4: { name: 'p99_ms' },
    5: { name: 'mean_ms' },
    6: { name: 'cv' },
    7: { name: 'runs' },
    8: { name: 'round_p95_ms', repeated: true },
  },
  'edgeforge.v1.ReportStatusRequest': {
    1: { name: 'event' },
    2: { name: 'rollout_id' },
    3: { name: 'variant' },
    4: { name: 'active_model', message: 'edgeforge.v1.ActiveModel' },
    5: { name: 'detail' },
  },
  'edgeforge.v1.ListDevicesRequest': {
    1: { name: 'hardware_class' },
    2: { name: 'page_size' },
    3: { name: 'page_token' },
  },
  'edgeforge.v1.GetDeviceRequest': {
    1: { name: 'device_id' },
  },
  'edgeforge.v1.StartRolloutRequest': {
    1: { name: 'spec_json' },
  },
  'edgeforge.v1.GetRolloutRequest': {
    1: { name: 'rollout_id' },
  },
  'edgeforge.v1.ListRolloutsRequest': {
    1: { name: 'page_size' },
    2: { name: 'page_token' },
  },
  'edgeforge.v1.CancelRolloutRequest': {
    1: { name: 'rollout_id' },
    2: { name: 'reason' },
  },
  'edgeforge.v1.RevokeDeviceRequest': {
    1: { name: 'device_id' },
    2: { name: 'reason' },
  },
  'edgeforge.v1.DeleteDeviceRequest': {
    1: { name: 'device_id' },
  },
  'edgeforge.v1.RotateManifestKeyRequest': {
    1: { name: 'grace_hours' },
    2: { name: 'retire_previous_key' },
  },
  'edgeforge.v1.RotateCredentialKeyRequest': {},
  'edgeforge.v1.ListPendingEnrollmentsRequest': {},
  'edgeforge.v1.ApprovePendingEnrollmentRequest': {
    1: { name: 'pending_id' },
  },
  'edgeforge.v1.RejectPendingEnrollmentRequest': {
    1: { name: 'pending_id' },
  },
  'edgeforge.v1.CreateEnrollmentTokenRequest': {
    1: { name: 'device_name' },
    2: { name: 'ttl_seconds' },
  },
};

/** `/edgeforge.v1.FleetService/Enroll` → `edgeforge.v1.EnrollRequest` (buf lint keeps it so). */
export function requestTypeOf(path: string): string {
  const match = /^\/(.+)\.[^./]+\/([^/]+)$/.exec(path);
  if (!match) throw new Error(`not a gRPC method path: ${path}`);
  return `${match[1]}.${match[2]}Request`;
}

class WireProblem extends Error {
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(problem);
  }
}

const MAX_DEPTH = 100;

class Walker {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly end: number,
  ) {}

  /** A varint as a bigint; undefined when the bytes end inside it or it runs past 10 bytes. */
  varint(): bigint | undefined {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) return undefined;
      const byte = this.bytes[this.pos++]!;
      value |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
    }
    return undefined;
  }
}

function join(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

/** Walks one message (the whole of `w` up to its end); throws the first WireProblem found. */
function walk(w: Walker, type: string, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new WireProblem(path || '(request)', 'nests messages too deep');
  const fields = REQUEST_FIELDS[type] ?? {};
  const seen = new Map<number, number>();
  const here = path || '(request)';
  while (w.pos < w.end) {
    const tag = w.varint();
    if (tag === undefined) throw new WireProblem(here, 'ends inside a field tag');
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number === 0 || number > 536_870_911) {
      throw new WireProblem(here, `has a field tag with field number ${number}`);
    }
    const spec = fields[number];
    const fieldName = () => {
      if (!spec) return join(path, `(field ${number})`);
      // Only repeated messages and integers are counted element by element (a packed run of
      // doubles is one field on the wire but many elements).
      if (!spec.repeated || (!spec.message && !spec.int)) return join(path, spec.name);
      const index = seen.get(number) ?? 0;
      seen.set(number, index + 1);
      return join(path, `${spec.name}[${index}]`);
    };
    switch (wireType) {
      case 0: {
        const name = fieldName();
        const value = w.varint();
        if (value === undefined) throw new WireProblem(name, 'is a varint cut short');
        if (spec?.int) checkInt(name, spec.int, value);
        break;
      }
      case 1:
      case 5: {
        const name = fieldName();
        w.pos += wireType === 1 ? 8 : 4;
        if (w.pos > w.end) throw new WireProblem(name, 'is a fixed-width value cut short');
        break;
      }
      case 2: {
        const length = w.varint();
        const start = w.pos;
        if (length === undefined || BigInt(start) + length > BigInt(w.end)) {
          throw new WireProblem(
            spec ? join(path, spec.name) : join(path, `(field ${number})`),
            'is cut short: its length runs past the end of the message',
          );
        }
        const end = start + Number(length);
        if (spec?.message) {
          const inner = new Walker(w.bytes, end);
          inner.pos = start;
          walk(inner, spec.message, fieldName(), depth + 1);
        } else if (spec?.int && spec.repeated) {
          // Packed repeated integers: varints back to back.
          const packed = new Walker(w.bytes, end);
          packed.pos = start;
          while (packed.pos < end) {
            const name = fieldName();
            const value = packed.varint();
            if (value === undefined) throw new WireProblem(name, 'is a varint cut short');
            checkInt(name, spec.int, value);
          }
        }
        w.pos = end;
        break;
      }
      case 3:
        skipGroup(w, number, fieldName(), depth + 1);
        break;
      default:
        throw new WireProblem(
          spec ? join(path, spec.name) : join(path, `(field ${number})`),
          `has wire type ${wireType}, which protobuf does not define here`,
        );
    }
  }
}

/** A proto2 group (wire types 3..4): the decoder skips it, so only its framing matters. */
function skipGroup(w: Walker, number: number, name: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new WireProblem(name, 'nests groups too deep');
  for (;;) {
    const tag = w.varint();
    if (tag === undefined) throw new WireProblem(name, 'is a group without its end tag');
    const inner = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (wireType === 4) {
      if (inner !== number) throw new WireProblem(name, 'is a group closed by the wrong end tag');
      return;
    }
    const bad = (): never => {
      throw new WireProblem(name, 'is a group holding a field cut short');
    };
    if (wireType === 0) {
      if (w.varint() === undefined) bad();
    } else if (wireType === 1 || wireType === 5) {
      w.pos += wireType === 1 ? 8 : 4;
      if (w.pos > w.end) bad();
    } else if (wireType === 2) {
      const length = w.varint();
      if (length === undefined || BigInt(w.pos) + length > BigInt(w.end)) bad();
      w.pos += Number(length);
    } else if (wireType === 3) {
      skipGroup(w, inner, name, depth + 1);
    } else {
      throw new WireProblem(name, `is a group holding wire type ${wireType}`);
    }
  }
}

function checkInt(field: string, kind: 'uint64' | 'int64', raw: bigint): void {
  if (raw >= 1n << 64n) throw new WireProblem(field, 'is a varint wider than 64 bits');
  const value = kind === 'int64' ? BigInt.asIntN(64, raw) : raw;
  if (value > MAX_EXACT) {
    throw new WireProblem(
      field,
      `is ${value}, above 2^53-1 (${MAX_EXACT}), the largest integer the control plane takes`,
    );
  }
  if (value < -MAX_EXACT) {
    throw new WireProblem(
      field,
      `is ${value}, below -(2^53-1), the smallest integer the control plane takes`,
    );
  }
}

/**
 * Why a request of `type` did not decode, as the INVALID_ARGUMENT to answer: the field at fault
 * when the bytes show one, else what the decoder said.
 */
export function describeDecodeFailure(
  bytes: Uint8Array,
  type: string,
  err: unknown,
): InvalidArgumentError {
  try {
    walk(new Walker(bytes, bytes.length), type, '', 0);
  } catch (problem) {
    if (problem instanceof WireProblem)
      return new InvalidArgumentError(problem.field, problem.message);
    throw problem;
  }
  const reason = err instanceof Error ? err.message : String(err);
  if (/MAX_SAFE_INTEGER|MIN_SAFE_INTEGER/.test(reason)) {
    // The walk should have named it; say at least what kind of field it was.
    return new InvalidArgumentError('(request)', 'a 64-bit integer field is beyond ±(2^53-1)');
  }
  return new InvalidArgumentError('(request)', `is not a valid ${type} message (${reason})`);
}

const UNDECODABLE: unique symbol = Symbol('undecodable request');

interface Undecodable {
  [UNDECODABLE]: InvalidArgumentError;
}

/** The refusal for a request that did not decode (see withRequestDecoding); else undefined. */
export function decodeFailure(request: unknown): InvalidArgumentError | undefined {
  return typeof request === 'object' && request !== null && UNDECODABLE in request
    ? (request as Undecodable)[UNDECODABLE]
    : undefined;
}

/**
 * The service definition with deserializers that never throw: a request that does not decode
 * reaches the handler as a marker, which `unary()` answers with INVALID_ARGUMENT.
 */
export function withRequestDecoding<S extends ServiceDefinition>(definition: S): S {
  const wrapped: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(definition)) {
    const type = requestTypeOf(method.path);
    wrapped[key] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          const undecodable: Undecodable = {
            [UNDECODABLE]: describeDecodeFailure(bytes, type, err),
          };
          return undecodable;
        }
      },
    };
  }
  return wrapped as S;
}
