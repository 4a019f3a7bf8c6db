/**
 * A minimal in-process FleetService for the agent's unit tests: real grpc-js on 127.0.0.1, with
 * knobs to fail, revoke and renew. The real control plane is tested against the agent in test/.
 */
import { randomUUID } from 'node:crypto';
import {
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
} from '@grpc/grpc-js';
import { AUTHORIZATION_METADATA_KEY, profileFromProto } from '../../common/fleet-api.js';
import { deriveHardwareClass } from '../../common/hardware/index.js';
import {
  FleetServiceService,
  type EnrollRequest,
  type EnrollResponse,
  type FleetServiceServer,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type ManifestKeyRotation,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';

export const TEST_ENROLLMENT_TOKEN = 'fleet-secret';
export const TEST_MANIFEST_KEY = Buffer.alloc(32, 7);
/** Nothing listens there: agents keep retrying NATS in the background, which unit tests skip. */
export const TEST_NATS_URL = 'nats://127.0.0.1:1';

export interface ReceivedHeartbeat {
  deviceId: string;
  credential: string;
  request: HeartbeatRequest;
}

export class FleetDouble {
  readonly enrollments: EnrollRequest[] = [];
  readonly heartbeats: ReceivedHeartbeat[] = [];
  /** Codes the next heartbeats fail with, first one first. */
  readonly heartbeatFailures: status[] = [];
  /** Set to renew the credential in the next heartbeat response (the old one stops working). */
  renewNext = false;
  nextHeartbeatSeconds = 1;
  /** What Enroll and every Heartbeat advertise; change it to move the agents. */
  natsUrl = TEST_NATS_URL;
  /** The manifest key Enroll hands out, and the rotation chain every Heartbeat carries. */
  manifestPublicKey: Buffer = TEST_MANIFEST_KEY;
  manifestKeyVersion = 1;
  manifestKeyRotations: ManifestKeyRotation[] = [];
  readonly #deviceIds = new Map<string, string>();
  /** credential → deviceId: what the double accepts. */
  readonly #credentials = new Map<string, string>();
  #server: Server | undefined;
  #port = 0;

  /** Plaintext unless given TLS server credentials. */
  constructor(private readonly credentials = ServerCredentials.createInsecure()) {}

  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** Listens on a free port the first time, on the same port after stop() (a restart). */
  async start(): Promise<void> {
    const server = new Server();
    server.addService(FleetServiceService, this.#handlers());
    this.#port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.#port}`, this.credentials, (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    this.#server = server;
  }

  /** Drops every connection at once, like a crashed control plane. State is kept. */
  stop(): void {
    this.#server?.forceShutdown();
    this.#server = undefined;
  }

  /** Every issued credential stops working, as after a key rotation. */
  revokeAll(): void {
    this.#credentials.clear();
  }

  credentialIsValid(credential: string): boolean {
    return this.#credentials.has(credential);
  }

  #issue(deviceId: string): string {
    const credential = `cred-${randomUUID()}`;
    this.#credentials.set(credential, deviceId);
    return credential;
  }

  #handlers(): FleetServiceServer {
    const unimplemented = (_: unknown, callback: sendUnaryData<never>) =>
      callback({ code: status.UNIMPLEMENTED, details: 'not in the test double' });
    return {
      enroll: (call: ServerUnaryCall<EnrollRequest, EnrollResponse>, callback) => {
        const req = call.request;
        if (req.enrollmentToken !== TEST_ENROLLMENT_TOKEN) {
          callback({ code: status.UNAUTHENTICATED, details: 'unknown enrollment token' });
          return;
        }
        this.enrollments.push(req);
        const deviceId = this.#deviceIds.get(req.deviceName) ?? `d-${this.#deviceIds.size + 1}`;
        this.#deviceIds.set(req.deviceName, deviceId);
        callback(null, {
          deviceId,
          deviceCredential: this.#issue(deviceId),
          credentialExpiresAt: new Date(Date.now() + 3_600_000),
          hardwareClass: deriveHardwareClass(profileFromProto(req.profile!)).key,
          manifestPublicKey: this.manifestPublicKey,
          natsUrl: this.natsUrl,
          manifestKeyVersion: this.manifestKeyVersion,
        });
      },
      heartbeat: (call: ServerUnaryCall<HeartbeatRequest, HeartbeatResponse>, callback) => {
        const failure = this.heartbeatFailures.shift();
        if (failure !== undefined) {
          callback({ code: failure, details: `test double fails with ${status[failure]}` });
          return;
        }
        const header = String(call.metadata.get(AUTHORIZATION_METADATA_KEY)[0] ?? '');
        const credential = header.replace(/^Bearer /, '');
        const deviceId = this.#credentials.get(credential);
        if (deviceId === undefined) {
          callback({ code: status.UNAUTHENTICATED, details: 'credential unknown or expired' });
          return;
        }
        this.heartbeats.push({ deviceId, credential, request: call.request });
        let renewedCredential = '';
        if (this.renewNext) {
          this.renewNext = false;
          this.#credentials.delete(credential);
          renewedCredential = this.#issue(deviceId);
        }
        callback(null, {
          nextHeartbeatSeconds: this.nextHeartbeatSeconds,
          renewedCredential,
          natsUrl: this.natsUrl,
          renewedCredentialExpiresAt: renewedCredential
            ? new Date(Date.now() + 7_200_000)
            : undefined,
          manifestKeyRotations: this.manifestKeyRotations,
        });
      },
      reportBenchmark: unimplemented,
      reportStatus: unimplemented,
    };
  }
}

/** Polls until `condition` holds; tests wait for states, never for times. */
export async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
