import { generateKeyPairSync, sign } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { profileToProto } from '../../../common/fleet-api.js';
import {
  deriveHardwareClass,
  parseCpuinfo,
  profileFromCpuinfo,
} from '../../../common/hardware/index.js';
import {
  DeviceState,
  type EnrollRequest,
  type LatencyHistogramDelta,
} from '../../../proto/gen/edgeforge/v1/fleet.pb.js';
import type {
  Accelerator_Kind,
  HardwareProfile as ProtoHardwareProfile,
} from '../../../proto/gen/edgeforge/v1/hardware.pb.js';
import { enrollProofMessage } from '../registry/device-key.js';
import { InvalidArgumentError } from './errors.js';
import {
  MAX_ENROLL_SKEW_MS,
  protoFieldPath,
  validateCreateEnrollmentToken,
  validateEnroll,
  validateHeartbeat,
  validateLatencyHistogram,
  validatePendingId,
  validateReportBenchmark,
} from './validation.js';

const CPUINFO = fileURLToPath(new URL('../../../test/fixtures/cpuinfo/', import.meta.url));

/** The profile an agent on each fixture device sends, as the wire carries it. */
const FIXTURES = readdirSync(CPUINFO)
  .filter((f) => f.endsWith('.txt'))
  .map((f): [string, ProtoHardwareProfile] => [
    f.replace(/\.txt$/, ''),
    profileToProto(
      profileFromCpuinfo(parseCpuinfo(readFileSync(`${CPUINFO}${f}`, 'utf8')), {
        memoryBytes: 4 * 1024 ** 3,
        os: { platform: 'linux', release: '6.1.0-rpi7-rpi-v8' },
        onnxRuntime: {
          version: '1.22.0',
          executionProviders: ['CPUExecutionProvider', 'XnnpackExecutionProvider'],
        },
        accelerators: f.startsWith('jetson')
          ? [{ kind: 'cuda', name: 'NVIDIA Jetson AGX Xavier', computeCapability: '7.2' }]
          : [],
      }),
    ),
  ]);

const PROFILE = FIXTURES.find(([name]) => name === 'raspberry-pi-4')![1];

function enroll(profile: Partial<ProtoHardwareProfile>, more: Partial<EnrollRequest> = {}) {
  return validateEnroll({
    enrollmentToken: 'token',
    deviceName: 'pi-kitchen',
    profile: { ...PROFILE, ...profile },
    agentVersion: '0.1.0',
    ...more,
  });
}

/** The InvalidArgumentError `fn` throws. */
function refusal(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('expected an InvalidArgumentError, but it passed');
}

describe('request validation', () => {
  it.each(FIXTURES)('takes the profile of a real device (%s)', (_name, profile) => {
    expect(() => enroll(profile)).not.toThrow();
  });

  it('names fields as the proto does, in snake case', () => {
    expect(protoFieldPath('accelerators[0].computeCapability')).toBe(
      'accelerators[0].compute_capability',
    );
    expect(protoFieldPath('onnxRuntime.executionProviders[1]')).toBe(
      'onnx_runtime.execution_providers[1]',
    );
    const huge = refusal(() => enroll({ memoryBytes: 2 ** 52 }));
    expect(huge.field).toBe('profile.memory_bytes');
    expect(huge.message).toMatch(/^profile\.memory_bytes: is 4503599627370496; expected/);
    const cc = refusal(() =>
      enroll({
        accelerators: [{ kind: 1, name: 'gpu', computeCapability: 'seven', memoryBytes: 0 }],
      }),
    );
    expect(cc.field).toBe('profile.accelerators[0].compute_capability');
    // Every refusal of a profile field: no camelCase in the field or the message.
    const bad: Partial<ProtoHardwareProfile>[] = [
      { cores: 0 },
      { threads: 1000 },
      { memoryBytes: 0 },
      { cpuVendor: '' },
      { cpuModel: '' },
      { onnxRuntime: undefined },
      { onnxRuntime: { version: '', executionProviders: [] } },
      { os: undefined },
      { os: { platform: '', release: '' } },
      { isaFeatures: Array.from({ length: 300 }, () => 'avx') },
      { accelerators: [{ kind: 1, name: '', computeCapability: '', memoryBytes: 0 }] },
    ];
    for (const profile of bad) {
      const err = refusal(() => enroll(profile));
      expect(err.message, JSON.stringify(profile)).not.toMatch(/[a-z][A-Z]/);
      expect(err.field).toMatch(/^profile\.[a-z_.[\]0-9]+$/);
    }
  });

  const malformed: [string, Partial<ProtoHardwareProfile>, string][] = [
    ['an arch with a newline and SQL', { arch: 'mips\n; DROP' }, 'profile.arch'],
    ['an arch with a dash (the class key separator)', { arch: 'x86-64' }, 'profile.arch'],
    ['an arch with a NATS wildcard', { arch: 'arm>' }, 'profile.arch'],
    [
      'an ISA feature with a space',
      { isaFeatures: ['asimd', 'neon x'] },
      'profile.isa_features[1]',
    ],
    ['a cpu vendor with a tab', { cpuVendor: 'ARM\tLtd' }, 'profile.cpu_vendor'],
    ['a cpu model with a bidi override', { cpuModel: 'Cortex\u202eA72' }, 'profile.cpu_model'],
    ['a device model with a NUL', { deviceModel: 'Pi\u00004' }, 'profile.device_model'],
    [
      'an execution provider with a quote',
      { onnxRuntime: { version: '1.22.0', executionProviders: ['CPU"ExecutionProvider'] } },
      'profile.onnx_runtime.execution_providers[0]',
    ],
    [
      'an ORT version with a slash',
      { onnxRuntime: { version: '1.22/../0', executionProviders: [] } },
      'profile.onnx_runtime.version',
    ],
    [
      'an OS platform with a semicolon',
      { os: { platform: 'linux;', release: '' } },
      'profile.os.platform',
    ],
    [
      'an OS release with an escape sequence',
      { os: { platform: 'linux', release: '6.1\u001b[31m' } },
      'profile.os.release',
    ],
    [
      'an unknown accelerator kind',
      {
        accelerators: [
          { kind: 9 as Accelerator_Kind, name: 'x', computeCapability: '', memoryBytes: 0 },
        ],
      },
      'profile.accelerators[0].kind',
    ],
    [
      'an accelerator name with a line separator',
      { accelerators: [{ kind: 2, name: 'npu\u2028x', computeCapability: '', memoryBytes: 0 }] },
      'profile.accelerators[0].name',
    ],
  ];
  it.each(malformed)('refuses %s by name', (_what, profile, field) => {
    const err = refusal(() => enroll(profile));
    expect(err.field).toBe(field);
    // What the client sent shows escaped: no control characters go back, nor into the log.
    expect(err.message).not.toMatch(/[\p{Cc}\u2028\u202e]/u);
  });

  it('takes unknown but well-formed values, and their class keys are subject tokens', () => {
    const riscv = enroll({
      arch: 'riscv64',
      cpuVendor: 'implementer 0xc0',
      isaFeatures: ['rvv', 'zfh'],
      onnxRuntime: { version: '1.23.0-dev+5f3e', executionProviders: ['rocm'] },
      os: { platform: 'freebsd', release: '14.1-RELEASE-p3' },
    });
    const cls = deriveHardwareClass(riscv.profile);
    expect(cls.key).toBe('riscv64-none-nofp16-cpu-4g');
    expect(cls.key).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(deriveHardwareClass(enroll({ arch: 'X64' }).profile).key).toMatch(/^x86_64-/);
  });

  it('refuses an agent version that is not a version', () => {
    expect(refusal(() => enroll({}, { agentVersion: '0.1.0\n' })).field).toBe('agent_version');
    expect(() => enroll({}, { agentVersion: '0.2.0-rc.1+build.7' })).not.toThrow();
  });

  describe('latency histograms', () => {
    const bounds = [0.01, 0.1, 1];
    const h = (counts: number[], sumSeconds: number, more: Partial<LatencyHistogramDelta> = {}) =>
      validateLatencyHistogram('inference_latency', {
        bucketUpperBounds: bounds,
        bucketCounts: counts,
        sumSeconds,
        count: counts.reduce((a, b) => a + b, 0),
        ...more,
      });
    const field = (fn: () => unknown) => refusal(fn).field;

    it('takes sums the buckets allow, at their edges too', () => {
      expect(h([1, 2, 3, 0], 0.005 + 2 * 0.05 + 3 * 0.5)).not.toBeNull();
      expect(h([0, 2, 0, 0], 0.2)).not.toBeNull(); // both at the upper bound
      expect(h([0, 0, 0, 2], 1e6)).not.toBeNull(); // +Inf has no upper bound
      expect(h([0, 0, 0, 0], 0)).not.toBeNull();
      // What float addition and subtraction leave on an agent's sum.
      expect(h([0, 3, 0, 0], 0.30000000000000004)).not.toBeNull();
      expect(h([0, 3, 0, 0], 0.03 - 1e-12)).not.toBeNull();
    });

    it('refuses a sum the buckets contradict, naming sum_seconds', () => {
      // 14 observations above 10 ms cannot add up to 0 s.
      const err = refusal(() => h([0, 14, 0, 0], 0));
      expect(err.field).toBe('inference_latency.sum_seconds');
      expect(err.message).toMatch(/between 0\.14 and 1\.4/);
      expect(field(() => h([2, 0, 0, 0], 0.5))).toBe('inference_latency.sum_seconds');
      expect(field(() => h([0, 0, 0, 1], 0.5))).toBe('inference_latency.sum_seconds');
      expect(field(() => h([0, 0, 0, 0], 3))).toBe('inference_latency.sum_seconds');
      expect(field(() => h([1, 0, 0, 0], -0.001))).toBe('inference_latency.sum_seconds');
      expect(field(() => h([1, 0, 0, 0], NaN))).toBe('inference_latency.sum_seconds');
      expect(field(() => h([1, 0, 0, 0], Infinity))).toBe('inference_latency.sum_seconds');
    });

    it('refuses counts that do not add up, and bounds that do not increase', () => {
      expect(refusal(() => h([1, 2, 3, 0], 1, { count: 7 })).message).toMatch(
        /^inference_latency\.count: is 7 but the buckets add up to 6/,
      );
      expect(field(() => h([1, 2, 3], 1))).toBe('inference_latency.bucket_counts');
      expect(field(() => h([1, 0.5, 0, 0], 0.05, { count: 1.5 }))).toBe(
        'inference_latency.bucket_counts[1]',
      );
      expect(field(() => h([2 ** 52, 2 ** 52, 0, 0], 1, { count: 1 }))).toBe(
        'inference_latency.bucket_counts',
      );
      expect(field(() => h([1, 0, 0, 0], 0, { bucketUpperBounds: [0.1, 0.1, 1] }))).toBe(
        'inference_latency.bucket_upper_bounds[1]',
      );
      expect(field(() => h([1, 0, 0, 0], 0, { bucketUpperBounds: [0.1, NaN, 1] }))).toBe(
        'inference_latency.bucket_upper_bounds[1]',
      );
      expect(field(() => h([1, 0, 0, 0], 0, { bucketUpperBounds: [-1, 0, 1] }))).toBe(
        'inference_latency.bucket_upper_bounds[0]',
      );
    });

    it('is checked in heartbeats', () => {
      expect(
        refusal(() =>
          validateHeartbeat({
            state: DeviceState.DEVICE_STATE_SERVING,
            inferenceLatency: {
              bucketUpperBounds: bounds,
              bucketCounts: [0, 14, 0, 0],
              sumSeconds: 0,
              count: 14,
            },
          }),
        ).field,
      ).toBe('inference_latency.sum_seconds');
    });
  });

  it('refuses a model version that is not a whole number within 2^53-1', () => {
    const beat = (version: number) =>
      validateHeartbeat({
        state: DeviceState.DEVICE_STATE_SERVING,
        activeModel: { modelId: 'm', variant: 'int8', version, sha256: 'a'.repeat(64) },
      });
    expect(beat(Number.MAX_SAFE_INTEGER).activeModel?.version).toBe(Number.MAX_SAFE_INTEGER);
    expect(refusal(() => beat(1.5)).field).toBe('active_model.version');
    expect(refusal(() => beat(2 ** 53)).field).toBe('active_model.version');
  });

  it('refuses benchmark rounds that are not latencies', () => {
    const report = {
      rolloutId: 'r-1',
      variant: 'int8',
      modelSha256: 'b'.repeat(64),
      sessionLoadMs: 12,
      latency: { p50Ms: 1, p90Ms: 2, p95Ms: 2.5, p99Ms: 3, meanMs: 1.2, cv: 0.1, runs: 100 },
      throughputPerSecond: 800,
      memoryGrowthBytes: 0,
      accuracy: 0.91,
      top1Agreement: 0.98,
      threads: 1,
      error: '',
    };
    expect(() =>
      validateReportBenchmark({ ...report, latency: { ...report.latency, roundP95Ms: [2.5] } }),
    ).not.toThrow();
    expect(
      refusal(() =>
        validateReportBenchmark({
          ...report,
          latency: { ...report.latency, roundP95Ms: [2.5, NaN] },
        }),
      ).field,
    ).toBe('latency.round_p95_ms[1]');
  });
});

describe('device key at Enroll', () => {
  const NOW = Date.parse('2026-01-01T00:00:00Z');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  /** A request signed as the agent signs it, at `signedAt`, with `changes` after signing. */
  const signed = (signedAt = NOW, changes: Partial<EnrollRequest> = {}): EnrollRequest => {
    const base = {
      enrollmentToken: 'token',
      deviceName: 'pi-kitchen',
      profile: PROFILE,
      agentVersion: '0.1.0',
    };
    const message = enrollProofMessage({ ...base, signedAtUnixMs: signedAt });
    return {
      ...base,
      devicePublicKey: raw,
      keySignature: sign(null, message, privateKey),
      signedAtUnixMs: signedAt,
      ...changes,
    };
  };

  it('takes a key with a signature over this request, and an agent without a key as before', () => {
    expect(validateEnroll(signed(), NOW).deviceKey).toEqual({
      publicKey: raw.toString('base64'),
      signedAtUnixMs: NOW,
    });
    expect(validateEnroll(signed(NOW - MAX_ENROLL_SKEW_MS), NOW).deviceKey).not.toBeNull();
    expect(validateEnroll(signed(NOW + MAX_ENROLL_SKEW_MS), NOW).deviceKey).not.toBeNull();
    expect(enroll({}).deviceKey).toBeNull();
  });

  const bad: [string, () => EnrollRequest, string, RegExp][] = [
    [
      'a 31-byte key',
      () => signed(NOW, { devicePublicKey: raw.subarray(0, 31) }),
      'device_public_key',
      /is 31 bytes; expected a raw 32-byte ed25519 public key/,
    ],
    [
      'a key without a signature',
      () => signed(NOW, { keySignature: undefined }),
      'key_signature',
      /is required with device_public_key/,
    ],
    [
      'a 63-byte signature',
      () => signed(NOW, { keySignature: Buffer.alloc(63) }),
      'key_signature',
      /is 63 bytes; expected a 64-byte/,
    ],
    [
      "another key's signature",
      () =>
        signed(NOW, {
          devicePublicKey: Buffer.from(
            generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x!,
            'base64url',
          ),
        }),
      'key_signature',
      /does not verify with device_public_key/,
    ],
    [
      'a signature for another name',
      () => signed(NOW, { deviceName: 'pi-garage' }),
      'key_signature',
      /does not verify/,
    ],
    [
      'a signature made with another token',
      () => signed(NOW, { enrollmentToken: 'stolen-token' }),
      'key_signature',
      /does not verify/,
    ],
    [
      'a signature for another time',
      () => signed(NOW, { signedAtUnixMs: NOW + 1 }),
      'key_signature',
      /does not verify/,
    ],
    [
      'a request signed 6 minutes ago',
      () => signed(NOW - 6 * 60_000),
      'signed_at_unix_ms',
      /360 s behind the control plane's clock .*at most 300 s either way/,
    ],
    [
      'a request signed in the far future',
      () => signed(NOW, { signedAtUnixMs: Number.MAX_SAFE_INTEGER }),
      'signed_at_unix_ms',
      /^signed_at_unix_ms: is 9007199254740991, .* ahead of/,
    ],
    [
      'a negative time',
      () => signed(NOW, { signedAtUnixMs: -5 }),
      'signed_at_unix_ms',
      /expected an integer from 1/,
    ],
    [
      'a key without a time',
      () => signed(NOW, { signedAtUnixMs: 0 }),
      'signed_at_unix_ms',
      /required/,
    ],
    [
      'a signature without a key',
      () => signed(NOW, { devicePublicKey: undefined }),
      'device_public_key',
      /is required with key_signature/,
    ],
    [
      'a time without a key',
      () => ({ ...signed(NOW), devicePublicKey: Buffer.alloc(0), keySignature: Buffer.alloc(0) }),
      'device_public_key',
      /is required with signed_at_unix_ms/,
    ],
  ];
  it.each(bad)('refuses %s, naming the field', (_what, request, field, problem) => {
    const err = refusal(() => validateEnroll(request(), NOW));
    expect(err.field).toBe(field);
    expect(err.message).toMatch(new RegExp(`^${field}: `));
    expect(err.message).toMatch(problem);
  });
});

describe('enrolment admin requests', () => {
  it('takes pending ids as ListPendingEnrollments gives them', () => {
    expect(validatePendingId('d-0123456789abcdef0123.0011223344556677')).toBe(
      'd-0123456789abcdef0123.0011223344556677',
    );
    expect(refusal(() => validatePendingId('')).message).toBe('pending_id: is required');
    expect(refusal(() => validatePendingId('d-1.zz\n')).message).toMatch(
      /^pending_id: is "d-1.zz\\n"; expected an id as `edgeforge fleet pending` lists them/,
    );
  });

  it('makes one-time tokens for a device name, for 1 s to 7 days (1 h by default)', () => {
    expect(validateCreateEnrollmentToken({ deviceName: 'pi-kitchen', ttlSeconds: 0 })).toEqual({
      deviceName: 'pi-kitchen',
      ttlSeconds: 3600,
    });
    expect(
      validateCreateEnrollmentToken({ deviceName: 'pi-kitchen', ttlSeconds: 7 * 86400 }).ttlSeconds,
    ).toBe(7 * 86400);
    expect(
      refusal(() =>
        validateCreateEnrollmentToken({ deviceName: 'pi-kitchen', ttlSeconds: 7 * 86400 + 1 }),
      ).field,
    ).toBe('ttl_seconds');
    expect(
      refusal(() => validateCreateEnrollmentToken({ deviceName: 'a b', ttlSeconds: 0 })).field,
    ).toBe('device_name');
  });
});
