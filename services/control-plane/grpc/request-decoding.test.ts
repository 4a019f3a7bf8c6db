import { fileURLToPath } from 'node:url';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { profileToProto } from '../../../common/fleet-api.js';
import { AdminServiceService } from '../../../proto/gen/edgeforge/v1/admin.pb.js';
import {
  DeviceState,
  EnrollRequest,
  FleetServiceService,
  HeartbeatRequest,
} from '../../../proto/gen/edgeforge/v1/fleet.pb.js';
import { InvalidArgumentError } from './errors.js';
import {
  decodeFailure,
  REQUEST_FIELDS,
  requestTypeOf,
  withRequestDecoding,
} from './request-decoding.js';

const PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));

function loadProtos(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') ? target : `${PROTO_DIR}${target}`;
  root.loadSync(['edgeforge/v1/fleet.proto', 'edgeforge/v1/admin.proto'], { keepCase: true });
  root.resolveAll();
  return root;
}

const SERVICES = [
  ['edgeforge.v1.FleetService', FleetServiceService],
  ['edgeforge.v1.AdminService', AdminServiceService],
] as const;

const fleet = withRequestDecoding(FleetServiceService);

/** What the guarded deserializer makes of `bytes` for `method`: the decoded request or refusal. */
function decode(method: keyof typeof fleet, bytes: Uint8Array) {
  const request: unknown = fleet[method].requestDeserialize(Buffer.from(bytes));
  return { request, refusal: decodeFailure(request) };
}

const PROFILE = profileToProto({
  arch: 'aarch64',
  cpuVendor: 'ARM',
  cpuModel: 'Cortex-A72',
  cores: 4,
  threads: 4,
  isaFeatures: ['asimd'],
  memoryBytes: 4 * 1024 ** 3,
  accelerators: [],
  onnxRuntime: { version: '1.22.0', executionProviders: ['CPUExecutionProvider'] },
  os: { platform: 'linux', release: '6.1.0' },
});

const BIG = 2n ** 60n;

describe('request decoding', () => {
  it('knows every field a request can carry, 64-bit integers and messages marked (as in proto/)', () => {
    const root = loadProtos();
    const expected: Record<string, Record<number, unknown>> = {};
    const visit = (type: protobuf.Type) => {
      const name = type.fullName.slice(1);
      if (name in expected) return;
      const fields: Record<number, unknown> = {};
      expected[name] = fields;
      for (const field of type.fieldsArray) {
        // The walk reads these as plain varints or fixed-width values; teach it them first.
        expect(['sint64', 'fixed64', 'sfixed64'], `${name}.${field.name}`).not.toContain(
          field.type,
        );
        const message = field.resolvedType instanceof protobuf.Type ? field.resolvedType : null;
        fields[field.id] = {
          name: field.name,
          ...(['uint64', 'int64'].includes(field.type) ? { int: field.type } : {}),
          ...(message ? { message: message.fullName.slice(1) } : {}),
          ...(field.repeated ? { repeated: true } : {}),
        };
        if (message) visit(message);
      }
    };
    for (const [service] of SERVICES) {
      for (const method of root.lookupService(service).methodsArray) {
        visit(method.resolvedRequestType!);
      }
    }
    expect(REQUEST_FIELDS).toEqual(expected);
  });

  it('maps every method path to its request type', () => {
    const root = loadProtos();
    for (const [service, definition] of SERVICES) {
      const methods = root.lookupService(service).methodsArray;
      expect(Object.keys(definition)).toHaveLength(methods.length);
      for (const method of methods) {
        const path = `/${service}/${method.name}`;
        expect(requestTypeOf(path)).toBe(method.resolvedRequestType!.fullName.slice(1));
      }
    }
  });

  it('decodes a well-formed request as before, up to 2^53-1', () => {
    const bytes = HeartbeatRequest.encode({
      state: DeviceState.DEVICE_STATE_SERVING,
      activeModel: {
        modelId: 'm',
        variant: 'int8',
        version: Number.MAX_SAFE_INTEGER,
        sha256: 'a'.repeat(64),
      },
    }).finish();
    const { request, refusal } = decode('heartbeat', bytes);
    expect(refusal).toBeUndefined();
    expect((request as HeartbeatRequest).activeModel?.version).toBe(Number.MAX_SAFE_INTEGER);
  });

  const cases: [string, keyof typeof fleet, (w: BinaryWriter) => void, string][] = [
    [
      'profile.memory_bytes',
      'enroll',
      (w) => {
        const profile = new BinaryWriter();
        profile.uint32(10).string('aarch64').uint32(56).uint64(BIG);
        w.uint32(26).bytes(profile.finish());
      },
      'profile.memory_bytes',
    ],
    [
      "the second accelerator's memory_bytes",
      'enroll',
      (w) => {
        const acc = (memory: bigint) =>
          new BinaryWriter().uint32(8).int32(1).uint32(32).uint64(memory).finish();
        const profile = new BinaryWriter();
        profile.uint32(66).bytes(acc(1024n)).uint32(66).bytes(acc(BIG));
        w.uint32(26).bytes(profile.finish());
      },
      'profile.accelerators[1].memory_bytes',
    ],
    [
      'active_model.version',
      'heartbeat',
      (w) => {
        w.uint32(8).int32(5);
        w.uint32(18).bytes(
          new BinaryWriter()
            .uint32(24)
            .uint64(2n ** 53n)
            .finish(),
        );
      },
      'active_model.version',
    ],
    [
      'a packed bucket count',
      'heartbeat',
      (w) => {
        const counts = new BinaryWriter().uint64(1n).uint64(2n).uint64(BIG).finish();
        w.uint32(26).bytes(new BinaryWriter().uint32(18).bytes(counts).finish());
      },
      'inference_latency.bucket_counts[2]',
    ],
    [
      'an unpacked bucket count',
      'heartbeat',
      (w) => {
        const h = new BinaryWriter().uint32(16).uint64(3n).uint32(16).uint64(BIG);
        w.uint32(26).bytes(h.finish());
      },
      'inference_latency.bucket_counts[1]',
    ],
    [
      'inference_latency.count',
      'heartbeat',
      (w) => w.uint32(26).bytes(new BinaryWriter().uint32(32).uint64(BIG).finish()),
      'inference_latency.count',
    ],
    [
      'a negative memory_growth_bytes beyond -(2^53-1)',
      'reportBenchmark',
      (w) => w.uint32(56).int64(-BIG),
      'memory_growth_bytes',
    ],
    [
      'active_model.version in a status report',
      'reportStatus',
      (w) =>
        w.uint32(34).bytes(
          new BinaryWriter()
            .uint32(24)
            .uint64(2n ** 64n - 1n)
            .finish(),
        ),
      'active_model.version',
    ],
  ];
  it.each(cases)('refuses %s above 2^53-1 by name', (_what, method, write, field) => {
    const w = new BinaryWriter();
    write(w);
    const { refusal } = decode(method, w.finish());
    expect(refusal).toBeInstanceOf(InvalidArgumentError);
    expect(refusal?.field).toBe(field);
    expect(refusal?.message).toMatch(/2\^53-1/);
  });

  it('names the field a truncated request ends in', () => {
    const bytes = EnrollRequest.encode({
      enrollmentToken: 't',
      deviceName: 'd',
      profile: PROFILE,
      agentVersion: '0.1.0',
    }).finish();
    // Cut inside the profile: the profile's length now runs past the end.
    const { refusal } = decode('enroll', bytes.subarray(0, 12));
    expect(refusal?.message).toMatch(/^profile: is cut short/);
    // A varint with no end.
    expect(decode('heartbeat', Uint8Array.of(8, 0xff, 0xff)).refusal?.message).toMatch(
      /^state: is a varint cut short/,
    );
  });

  it('never throws, whatever the bytes: a request or an INVALID_ARGUMENT', () => {
    const valid = EnrollRequest.encode({
      enrollmentToken: 't',
      deviceName: 'd',
      profile: PROFILE,
      agentVersion: '0.1.0',
    }).finish();
    const mutated = fc
      .tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 12 }), fc.nat(4))
      .map(([at, bytes, cut]) => {
        const out = new Uint8Array([...valid.subarray(0, at), ...bytes, ...valid.subarray(at)]);
        return out.subarray(0, out.length - cut);
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (bytes) => {
        for (const method of Object.keys(fleet) as (keyof typeof fleet)[]) {
          const { request, refusal } = decode(method, bytes);
          expect(refusal ?? request).toBeTypeOf('object');
        }
      }),
      { numRuns: 2000, seed: 14 },
    );
  });
});
