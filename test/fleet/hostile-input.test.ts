import { fileURLToPath } from 'node:url';
import { connect as tcpConnect } from 'node:net';
import { Client, credentials as grpcCredentials, Metadata, status } from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { MAX_REQUEST_BYTES, profileToProto } from '../../common/fleet-api.js';
import { EDGE_LATENCY_BUCKETS } from '../../common/latency-histogram.js';
import { KV_BUCKETS } from '../../common/names.js';
import * as adminPb from '../../proto/gen/edgeforge/v1/admin.pb.js';
import * as fleetPb from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import * as hardwarePb from '../../proto/gen/edgeforge/v1/hardware.pb.js';
import {
  ADMIN_TOKEN,
  benchmarkReport,
  ENROLLMENT_TOKEN,
  resetFleetState,
  startTestControlPlane,
  type TestControlPlane,
} from '../helpers/control-plane.js';
import { fixtureProfile } from '../helpers/profiles.js';
import { testNats } from '../helpers/stack.js';
import { createTestPki } from '../helpers/tls.js';

// Hostile input from a client not written with this project's code: every answer is OK or a
// client error, never INTERNAL or UNKNOWN, and a refused call writes nothing to the registry.

const { DeviceState, StatusEvent, FleetServiceService } = fleetPb;
const { AdminServiceService } = adminPb;

/** The statuses a client's own mistake may earn; anything else is the server's fault. */
const CLIENT_ERRORS = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
  status.NOT_FOUND,
  status.FAILED_PRECONDITION,
  status.RESOURCE_EXHAUSTED,
]);

/** How many random requests the fuzz sends: ~3 s on 2 cores. EDGEFORGE_FUZZ_RUNS for more. */
const FUZZ_RUNS = Number(process.env.EDGEFORGE_FUZZ_RUNS ?? 1000);
/** A fixed seed by default, so CI sees the same requests; EDGEFORGE_FUZZ_SEED to explore. */
const FUZZ_SEED = process.env.EDGEFORGE_FUZZ_SEED ? Number(process.env.EDGEFORGE_FUZZ_SEED) : 14;

const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** The protos, for the field types the fuzz mutates (names camelCase, as ts-proto's). */
function loadProtos(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') ? target : `${PROTO_DIR}${target}`;
  root.loadSync(['edgeforge/v1/fleet.proto', 'edgeforge/v1/admin.proto']);
  root.resolveAll();
  return root;
}

interface Answer {
  code: status;
  details: string;
  response?: Buffer;
}

/** Sends raw bytes as a method's request (what any client can put on the wire). */
function rawCaller(address: string) {
  const client = new Client(address, grpcCredentials.createInsecure(), {
    'grpc.max_send_message_length': 4 * MAX_REQUEST_BYTES,
  });
  onTestFinished(() => client.close());
  return (path: string, bytes: Uint8Array, credential?: string) =>
    new Promise<Answer>((resolve) => {
      const metadata = new Metadata();
      if (credential !== undefined) metadata.set('authorization', `Bearer ${credential}`);
      client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(bytes),
        metadata,
        { deadline: Date.now() + 15_000 },
        (err, response) =>
          resolve(
            err
              ? { code: err.code, details: err.details }
              : { code: status.OK, details: '', response },
          ),
      );
    });
}

/** The devices bucket's last sequence: any write to any registry entry moves it. */
async function registryRevision(cp: TestControlPlane): Promise<number> {
  const kv = await new Kvm(cp.nats).open(KV_BUCKETS.devices);
  return (await kv.status()).streamInfo.state.last_seq;
}

async function metricLabels(cp: TestControlPlane, label: string): Promise<string[]> {
  const text = await (await fetch(cp.metricsUrl)).text();
  return [...text.matchAll(new RegExp(`[{,]${label}="((?:[^"\\\\]|\\\\.)*)"`, 'g'))].map(
    (m) => m[1]!,
  );
}

const PROFILE = profileToProto(fixtureProfile('raspberry-pi-4'));

function enrollRequest(deviceName: string): fleetPb.EnrollRequest {
  return { enrollmentToken: ENROLLMENT_TOKEN, deviceName, profile: PROFILE, agentVersion: '0.1.0' };
}

const ACTIVE_MODEL = { modelId: 'digits', variant: 'int8', version: 3, sha256: 'a'.repeat(64) };

/** A heartbeat with serving latencies as an agent counts them (4 ms and 20 ms, twice each). */
function servingBeat(): fleetPb.HeartbeatRequest {
  const counts = new Array<number>(EDGE_LATENCY_BUCKETS.length + 1).fill(0);
  counts[EDGE_LATENCY_BUCKETS.indexOf(0.005)] = 2;
  counts[EDGE_LATENCY_BUCKETS.indexOf(0.025)] = 2;
  return {
    state: DeviceState.DEVICE_STATE_SERVING,
    activeModel: ACTIVE_MODEL,
    inferenceLatency: {
      bucketUpperBounds: [...EDGE_LATENCY_BUCKETS],
      bucketCounts: counts,
      sumSeconds: 2 * 0.004 + 2 * 0.02,
      count: 4,
    },
  };
}

/** A bigint where the generated types say number: the encoder writes it as it is. */
const u64 = (value: bigint) => value as unknown as number;

describe('hostile input', () => {
  beforeEach(async () => {
    await resetFleetState(await testNats('reset'));
  });

  it('answers the reported cases with INVALID_ARGUMENT naming the field, and keeps them out', async () => {
    const cp = await startTestControlPlane();
    const call = rawCaller(cp.address);
    const enroll = (req: fleetPb.EnrollRequest) =>
      call(FleetServiceService.enroll.path, fleetPb.EnrollRequest.encode(req).finish());
    const ok = await enroll(enrollRequest('pi-kitchen'));
    expect(ok.code).toBe(status.OK);
    const { deviceCredential } = fleetPb.EnrollResponse.decode(ok.response!);
    const beat = (req: fleetPb.HeartbeatRequest) =>
      call(
        FleetServiceService.heartbeat.path,
        fleetPb.HeartbeatRequest.encode(req).finish(),
        deviceCredential,
      );
    expect((await beat(servingBeat())).code).toBe(status.OK);
    const before = await registryRevision(cp);
    const classesBefore = new Set(await metricLabels(cp, 'hardware_class'));

    const cases: [string, Promise<Answer>, RegExp][] = [
      [
        'memory_bytes above 2^53',
        enroll({ ...enrollRequest('pi-2'), profile: { ...PROFILE, memoryBytes: u64(2n ** 60n) } }),
        /^profile\.memory_bytes: is 1152921504606846976, above 2\^53-1/,
      ],
      [
        'active_model.version above 2^53',
        beat({ ...servingBeat(), activeModel: { ...ACTIVE_MODEL, version: u64(2n ** 64n - 1n) } }),
        /^active_model\.version: is 18446744073709551615, above 2\^53-1/,
      ],
      [
        'a histogram count above 2^53',
        beat({
          ...servingBeat(),
          inferenceLatency: {
            ...servingBeat().inferenceLatency!,
            bucketCounts: servingBeat().inferenceLatency!.bucketCounts.map((c, i) =>
              i === 3 ? u64(2n ** 53n) : c,
            ),
          },
        }),
        /^inference_latency\.bucket_counts\[3\]: is 9007199254740992, above 2\^53-1/,
      ],
      [
        'an arch with a newline',
        enroll({ ...enrollRequest('pi-3'), profile: { ...PROFILE, arch: 'mips\n; DROP' } }),
        /^profile\.arch: is "mips\\n; DROP"; expected a value matching/,
      ],
      [
        '14 observations adding up to 0 s',
        beat({
          ...servingBeat(),
          inferenceLatency: { ...servingBeat().inferenceLatency!, sumSeconds: 0, count: 4 },
        }),
        /^inference_latency\.sum_seconds: is 0, but 4 observations in these buckets add up to between/,
      ],
      [
        'an absurd memory size, named as in the proto',
        enroll({ ...enrollRequest('pi-4'), profile: { ...PROFILE, memoryBytes: 2 ** 52 } }),
        /^profile\.memory_bytes: is 4503599627370496; expected an integer/,
      ],
    ];
    for (const [what, answer, details] of cases) {
      const { code, details: got } = await answer;
      expect(status[code], `${what}: ${got}`).toBe('INVALID_ARGUMENT');
      expect(got, what).toMatch(details);
    }
    expect(await registryRevision(cp)).toBe(before);
    // No new class, and no label value a client chose with odd characters.
    expect(new Set(await metricLabels(cp, 'hardware_class'))).toEqual(classesBefore);
  });

  /** How long until the server closes a TCP connection that sends `greeting` and then stalls. */
  const closedAfter = (address: string, greeting: string) =>
    new Promise<number>((resolve, reject) => {
      const port = Number(address.slice(address.lastIndexOf(':') + 1));
      const started = Date.now();
      const socket = tcpConnect(port, '127.0.0.1', () => socket.write(greeting));
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('the stalled connection is still open after 10 s'));
      }, 10_000);
      socket.on('data', () => {});
      socket.on('error', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - started);
      });
    });

  it('drops a connection that never finishes its TLS handshake, or never makes a call', async () => {
    const pki = await createTestPki();
    const tls = await startTestControlPlane({
      tls: { certFile: pki.serverCert, keyFile: pki.serverKey },
      connectionTimeouts: { tlsHandshakeMs: 500 },
    });
    // Half a ClientHello record header, then nothing.
    expect(await closedAfter(tls.address, '\x16\x03\x01')).toBeLessThan(5_000);
    const plain = await startTestControlPlane({ connectionTimeouts: { idleMs: 500 } });
    // The HTTP/2 preface, then no call: idle from the start.
    expect(await closedAfter(plain.address, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).toBeLessThan(
      5_000,
    );
  });

  it('answers random and mutated requests on every method with OK or a client error', async () => {
    const cp = await startTestControlPlane();
    const call = rawCaller(cp.address);
    const enrolled = await call(
      FleetServiceService.enroll.path,
      fleetPb.EnrollRequest.encode(enrollRequest('fuzz-base')).finish(),
    );
    expect(enrolled.code).toBe(status.OK);
    const { deviceId, deviceCredential } = fleetPb.EnrollResponse.decode(enrolled.response!);

    const root = loadProtos();
    const specJson = JSON.stringify({
      rolloutId: 'r-fuzz',
      dataset: { source: 'digits' },
      source: {
        kind: 'distill',
        teacher: { source: 'train', architecture: 'small_cnn', training: { epochs: 1 } },
        student: { architecture: 'small_cnn', distill: { training: { epochs: 1 } } },
      },
      accuracyBudget: 0.05,
      canaries: 1,
      waves: { percents: [100], bakeSeconds: 1 },
    });
    type Role = 'anyone' | 'device' | 'admin';
    const methods: [string, Role, { path: string }, unknown][] = [
      ['EnrollRequest', 'anyone', FleetServiceService.enroll, enrollRequest('fuzz-device')],
      ['HeartbeatRequest', 'device', FleetServiceService.heartbeat, servingBeat()],
      [
        'ReportBenchmarkRequest',
        'device',
        FleetServiceService.reportBenchmark,
        benchmarkReport('r-fuzz', 'int8'),
      ],
      [
        'ReportStatusRequest',
        'device',
        FleetServiceService.reportStatus,
        {
          event: StatusEvent.STATUS_EVENT_ACTIVATED,
          rolloutId: 'r-fuzz',
          variant: 'int8',
          activeModel: ACTIVE_MODEL,
          detail: 'activated',
        },
      ],
      [
        'ListDevicesRequest',
        'admin',
        AdminServiceService.listDevices,
        { hardwareClass: '', pageSize: 10, pageToken: '' },
      ],
      ['GetDeviceRequest', 'admin', AdminServiceService.getDevice, { deviceId }],
      ['StartRolloutRequest', 'admin', AdminServiceService.startRollout, { specJson }],
      ['GetRolloutRequest', 'admin', AdminServiceService.getRollout, { rolloutId: 'r-fuzz' }],
      [
        'ListRolloutsRequest',
        'admin',
        AdminServiceService.listRollouts,
        { pageSize: 10, pageToken: '' },
      ],
      [
        'CancelRolloutRequest',
        'admin',
        AdminServiceService.cancelRollout,
        { rolloutId: 'r-fuzz', reason: 'fuzz' },
      ],
    ];
    /** The generated codec of a message type (fromPartial fills what a mutation left out). */
    const codec = (type: protobuf.Type) =>
      ((fleetPb as Record<string, unknown>)[type.name] ??
        (adminPb as Record<string, unknown>)[type.name] ??
        (hardwarePb as Record<string, unknown>)[type.name]) as {
        fromPartial(o: unknown): unknown;
        encode(m: unknown): { finish(): Uint8Array };
      };

    const hostileString = fc.oneof(
      fc.constantFrom(
        '',
        ' ',
        'mips\n; DROP',
        'x86_64\u0000',
        'Cortex\u202eA72',
        'track.*.>',
        'x86_64-vnni-nofp16-cpu-8g',
        '\ud800',
        '😀',
        '\r\n',
        'riscv64',
        'CPUExecutionProvider',
        'a'.repeat(300),
        'b'.repeat(5000),
      ),
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({
        unit: fc.constantFrom('\n', '\t', '\u0000', '\u007f', '\u2028', 'a', '-', '.', '_', ' '),
        maxLength: 20,
      }),
    );
    const valueOf = (field: protobuf.Field, depth: number): fc.Arbitrary<unknown> => {
      const one = (): fc.Arbitrary<unknown> => {
        const type = field.resolvedType;
        if (type instanceof protobuf.Enum) {
          return fc.oneof(
            fc.constantFrom(-1, 0, ...Object.values(type.values), 99, 2 ** 31 - 1),
            fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
          );
        }
        if (type instanceof protobuf.Type) {
          // A missing message; not in a list (a list element is always there on the wire).
          const absent = field.repeated ? {} : undefined;
          if (depth > 2) return fc.constant(absent);
          return fc.oneof(
            fc.constantFrom(absent, {}),
            fc.record(
              Object.fromEntries(type.fieldsArray.map((f) => [f.name, valueOf(f, depth + 1)])),
              { requiredKeys: [] },
            ),
          );
        }
        switch (field.type) {
          case 'string':
            return hostileString;
          case 'bytes':
            return fc.uint8Array({ maxLength: 64 });
          case 'bool':
            return fc.boolean();
          case 'uint32':
            return fc.oneof(fc.constantFrom(0, 1, 4096, 2 ** 32 - 1), fc.nat());
          case 'int32':
            return fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
          case 'uint64':
            return fc
              .oneof(
                fc.constantFrom(0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n),
                fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
              )
              .map(u64);
          case 'int64':
            return fc
              .oneof(
                fc.constantFrom(-(2n ** 63n), -(2n ** 53n), -1n, 0n, 2n ** 53n, 2n ** 63n - 1n),
                fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
              )
              .map(u64);
          case 'double':
          case 'float':
            return fc.oneof(
              fc.constantFrom(NaN, Infinity, -Infinity, -0, -1, 0, 1e308, 5e-324),
              fc.double(),
            );
          default:
            throw new Error(`the fuzz does not know ${field.type} yet`);
        }
      };
      return field.repeated ? fc.array(one(), { maxLength: 70 }) : one();
    };
    /** A path into the request and the value to put there (undefined: the field is missing). */
    const mutation = (
      type: protobuf.Type,
      depth = 0,
    ): fc.Arbitrary<{ path: string[]; value: unknown }> =>
      fc.constantFrom(...type.fieldsArray).chain((field) => {
        const here = valueOf(field, depth).map((value) => ({ path: [field.name], value }));
        const inner = field.resolvedType;
        if (inner instanceof protobuf.Type && !field.repeated && depth < 3) {
          return fc.oneof(
            here,
            mutation(inner, depth + 1).map((m) => ({
              path: [field.name, ...m.path],
              value: m.value,
            })),
          );
        }
        return here;
      });
    const wireMutation = fc.oneof(
      { weight: 6, arbitrary: fc.constant({ kind: 'none' as const }) },
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
      }),
      fc.record({
        // A known field number with another wire type: a string where a message goes, ...
        kind: fc.constant('retype' as const),
        field: fc.integer({ min: 1, max: 12 }),
        wireType: fc.constantFrom(0, 1, 2, 3, 5),
        payload: fc.uint8Array({ maxLength: 12 }),
      }),
      fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 96 }) }),
    );
    const credentialFor = fc.oneof(
      { weight: 8, arbitrary: fc.constant('right' as const) },
      fc.constantFrom('none' as const, 'garbage' as const, 'other' as const),
    );

    const scenario = fc.nat(methods.length - 1).chain((i) =>
      fc.record({
        method: fc.constant(i),
        mutations: fc.array(mutation(root.lookupType(`edgeforge.v1.${methods[i]![0]}`)), {
          maxLength: 3,
        }),
        wire: wireMutation,
        credential: credentialFor,
      }),
    );

    const apply = (request: unknown, path: string[], value: unknown) => {
      let target = request as Record<string, unknown>;
      for (const key of path.slice(0, -1)) {
        if (typeof target[key] !== 'object' || target[key] === null) target[key] = {};
        target = target[key] as Record<string, unknown>;
      }
      target[path.at(-1)!] = value;
    };
    type WireMutation = typeof wireMutation extends fc.Arbitrary<infer T> ? T : never;
    const encodeWire = (bytes: Uint8Array, wire: WireMutation): Uint8Array => {
      switch (wire.kind) {
        case 'none':
          return bytes;
        case 'truncate':
          return bytes.subarray(0, wire.at % (bytes.length + 1));
        case 'insert': {
          const at = wire.at % (bytes.length + 1);
          return Uint8Array.from([...bytes.subarray(0, at), ...wire.bytes, ...bytes.subarray(at)]);
        }
        case 'retype': {
          const tag = (wire.field << 3) | wire.wireType;
          const body =
            wire.wireType === 2
              ? [wire.payload.length, ...wire.payload]
              : wire.wireType === 1
                ? [...wire.payload, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 8)
                : wire.wireType === 5
                  ? [...wire.payload, 0, 0, 0, 0].slice(0, 4)
                  : wire.wireType === 0
                    ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
                    : [];
          return Uint8Array.from([...bytes, tag, ...body]);
        }
        case 'random':
          return wire.bytes;
      }
    };
    const tokens: Record<Role, string> = {
      anyone: '',
      device: deviceCredential,
      admin: ADMIN_TOKEN,
    };
    const seen = new Map<string, number>();

    await fc.assert(
      fc.asyncProperty(scenario, async ({ method, mutations, wire, credential }) => {
        const [typeName, role, definition, base] = methods[method]!;
        const type = root.lookupType(`edgeforge.v1.${typeName}`);
        const request = structuredClone(base);
        for (const { path, value } of mutations) apply(request, path, value);
        const messageCodec = codec(type);
        const bytes = encodeWire(
          messageCodec.encode(messageCodec.fromPartial(request)).finish(),
          wire,
        );
        const token =
          credential === 'right'
            ? tokens[role] || undefined
            : credential === 'garbage'
              ? 'garbage-credential'
              : credential === 'other'
                ? role === 'admin'
                  ? deviceCredential
                  : ADMIN_TOKEN
                : undefined;
        const before = await registryRevision(cp);
        const answer = await call(definition.path, bytes, token);
        const what = `${typeName} ${status[answer.code]}: ${answer.details}`;
        seen.set(
          `${typeName} ${status[answer.code]}`,
          (seen.get(`${typeName} ${status[answer.code]}`) ?? 0) + 1,
        );
        expect(CLIENT_ERRORS.has(answer.code), what).toBe(true);
        if (answer.code !== status.OK) {
          expect(await registryRevision(cp), `${what}: wrote to the registry`).toBe(before);
        }
        if (answer.code === status.INVALID_ARGUMENT) {
          // Fields named as the proto does (spec_json paths are the spec file's own JSON keys).
          const field = answer.details.slice(0, answer.details.indexOf(': '));
          if (!field.startsWith('spec_json')) expect(field, what).toMatch(/^[a-z0-9_.[\]() ]+$/);
        }
      }),
      { numRuns: FUZZ_RUNS, seed: FUZZ_SEED, interruptAfterTimeLimit: 60_000 },
    );
    // Whatever went in, the labels a client can influence stay tokens.
    for (const label of ['hardware_class', 'model', 'variant']) {
      for (const value of await metricLabels(cp, label)) {
        expect(value, label).toMatch(/^[A-Za-z0-9_.-]+$/);
      }
    }
    // The fuzz got past validation on every method that can succeed here (the rollout calls but
    // ListRollouts need Temporal), not only refusals.
    const accepted = [...seen.keys()].filter((k) => k.endsWith(' OK')).map((k) => k.split(' ')[0]);
    expect(new Set(accepted), JSON.stringify([...seen])).toEqual(
      new Set([
        'EnrollRequest',
        'HeartbeatRequest',
        'ReportBenchmarkRequest',
        'ReportStatusRequest',
        'ListDevicesRequest',
        'GetDeviceRequest',
        'ListRolloutsRequest',
      ]),
    );
  });
});
