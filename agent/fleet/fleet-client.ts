import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import {
  credentials,
  Metadata,
  status,
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { EdgeforgeError } from '../../common/errors.js';
import { parseHostPort } from '../../common/metrics-server.js';
import {
  AUTHORIZATION_METADATA_KEY,
  bearer,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  REVOKED_PHRASE,
} from '../../common/fleet-api.js';
import {
  FleetServiceClient,
  type EnrollRequest,
  type EnrollResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type ReportBenchmarkRequest,
  type ReportBenchmarkResponse,
  type ReportStatusRequest,
  type ReportStatusResponse,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';

/** PEM files for TLS. A CA alone verifies the server; a cert and key as well give mTLS. */
export interface TlsFiles {
  /** CA bundle that signed the control plane's certificate; the system roots when absent. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface FleetClientOptions {
  /** The control plane's gRPC address, host:port. */
  address: string;
  /**
   * TLS; `{}` verifies the server against the system's trust roots. Plaintext when absent, which
   * is refused for an address that is not loopback unless `insecure` (plaintextRefusal).
   */
  tls?: TlsFiles;
  /** Plaintext to a control plane that is not on loopback, on purpose (`--insecure`). */
  insecure?: boolean;
  /** Deadline of each call. */
  deadlineMs?: number;
}

export const DEFAULT_DEADLINE_MS = 5_000;

/**
 * Edge links drop idle TCP connections silently (NAT, carrier-grade NAT); keepalive pings find a
 * dead connection before a heartbeat waits on it. The control plane must allow one ping a minute
 * without calls in flight.
 */
const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_send_message_length': MAX_REQUEST_BYTES,
  'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 1,
  // The channel's own reconnect backoff would otherwise grow to 2 minutes and fail heartbeats
  // fast for that long after the control plane is back; keep it within the agent's retry cap.
  'grpc.max_reconnect_backoff_ms': 60_000,
};

/** Codes that mean "try again later": retried with backoff, never a reason to re-enroll. */
const TRANSIENT_CODES: ReadonlySet<status> = new Set([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
]);

/** A FleetService call failed; `code` is the gRPC status (connection errors are UNAVAILABLE). */
export class FleetCallError extends EdgeforgeError {
  override name = 'FleetCallError';
  readonly code: status;
  readonly method: string;

  constructor(method: string, address: string, error: ServiceError) {
    super(`${method} to ${address} failed: ${status[error.code]}: ${error.details}`, {
      cause: error,
    });
    this.code = error.code;
    this.method = method;
  }

  /**
   * Worth retrying unchanged after a pause (the control plane restarting, a network blip), and an
   * enrolment waiting for an operator to approve the device key: asked again, it succeeds once
   * they have.
   */
  get transient(): boolean {
    return TRANSIENT_CODES.has(this.code) || this.awaitingApproval;
  }

  /**
   * Enroll was not applied: the name is enrolled with another device key, and an operator must
   * approve this one (`edgeforge fleet approve`, the pending id in the message).
   */
  get awaitingApproval(): boolean {
    return (
      this.method === 'Enroll' &&
      this.code === status.FAILED_PRECONDITION &&
      this.message.includes(AWAITING_APPROVAL_PHRASE)
    );
  }

  /**
   * An operator revoked this device: no new credential or enrollment helps, only the operator
   * (deleting the device lets it enrol again).
   */
  get revoked(): boolean {
    return this.code === status.PERMISSION_DENIED && this.message.includes(REVOKED_PHRASE);
  }
}

/**
 * In the details of the FAILED_PRECONDITION that the control plane answers an Enroll with when
 * the key needs an operator's approval (services/control-plane/registry/device-key.ts says the
 * same; test/fleet/device-keys.test.ts checks that agents recognise it).
 */
export const AWAITING_APPROVAL_PHRASE = 'an operator must approve this device key';

/** Whether `address` (host:port, or a unix: socket) stays on this machine. */
export function isLoopbackAddress(address: string): boolean {
  if (address.startsWith('unix:')) return true;
  let host: string;
  try {
    host = parseHostPort(address).host.toLowerCase();
  } catch {
    return false;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const v4 = host.startsWith('::ffff:') ? host.slice('::ffff:'.length) : host;
  if (isIPv4(v4)) return v4.startsWith('127.');
  // Any spelling of ::1 (0:0:0:0:0:0:0:1 included), as the URL parser normalises it.
  return isIPv6(host) && new URL(`http://[${host}]`).hostname === '[::1]';
}

/**
 * Why the agent must not call `address` in plaintext, or undefined when it may: plaintext is the
 * default only for a control plane on loopback (the embedded stack). Anywhere else the enrollment
 * token and the device credential would cross the network readable, so TLS is required unless
 * the operator says `--insecure`.
 */
export function plaintextRefusal(
  address: string,
  transport: { tls: boolean; insecure?: boolean },
): string | undefined {
  if (transport.tls || transport.insecure || isLoopbackAddress(address)) return undefined;
  return (
    `${address} is not a loopback address, and without TLS the enrollment token and the device ` +
    'credential would cross the network readable. Give --tls / EDGEFORGE_AGENT_TLS (the ' +
    "control plane's certificate verified against the system's trust roots) or --tls-ca <file>, " +
    'or --insecure / EDGEFORGE_AGENT_INSECURE to use plaintext on purpose (trusted networks only)'
  );
}

function readPem(kind: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new EdgeforgeError(
      `cannot read the TLS ${kind} file ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

function channelCredentials(tls: TlsFiles | undefined): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new EdgeforgeError(
      'mTLS needs both a client certificate and its private key; give both files or neither',
    );
  }
  return credentials.createSsl(
    tls.caFile === undefined ? null : readPem('CA', tls.caFile),
    tls.keyFile === undefined ? null : readPem('client key', tls.keyFile),
    tls.certFile === undefined ? null : readPem('client certificate', tls.certFile),
  );
}

type UnaryCallback<Res> = (error: ServiceError | null, response: Res) => void;

/**
 * Promise-returning FleetService calls over one channel: every call has a deadline, calls after
 * Enroll carry the device credential, and an AbortSignal cancels the call in flight.
 */
export class FleetClient {
  readonly address: string;
  readonly #deadlineMs: number;
  readonly #client: FleetServiceClient;

  constructor(options: FleetClientOptions) {
    const refusal = plaintextRefusal(options.address, {
      tls: options.tls !== undefined,
      insecure: options.insecure,
    });
    if (refusal) throw new EdgeforgeError(`refusing plaintext gRPC: ${refusal}`);
    this.address = options.address;
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#client = new FleetServiceClient(
      options.address,
      channelCredentials(options.tls),
      CHANNEL_OPTIONS,
    );
  }

  /** Carries no credential: the enrollment token in the request is the proof. */
  enroll(request: EnrollRequest, signal?: AbortSignal): Promise<EnrollResponse> {
    return this.#unary('Enroll', new Metadata(), signal, (md, opts, cb) =>
      this.#client.enroll(request, md, opts, cb),
    );
  }

  heartbeat(
    request: HeartbeatRequest,
    credential: string,
    signal?: AbortSignal,
  ): Promise<HeartbeatResponse> {
    return this.#unary('Heartbeat', authorized(credential), signal, (md, opts, cb) =>
      this.#client.heartbeat(request, md, opts, cb),
    );
  }

  reportBenchmark(
    request: ReportBenchmarkRequest,
    credential: string,
    signal?: AbortSignal,
  ): Promise<ReportBenchmarkResponse> {
    return this.#unary('ReportBenchmark', authorized(credential), signal, (md, opts, cb) =>
      this.#client.reportBenchmark(request, md, opts, cb),
    );
  }

  reportStatus(
    request: ReportStatusRequest,
    credential: string,
    signal?: AbortSignal,
  ): Promise<ReportStatusResponse> {
    return this.#unary('ReportStatus', authorized(credential), signal, (md, opts, cb) =>
      this.#client.reportStatus(request, md, opts, cb),
    );
  }

  /** Closes the channel; calls still in flight finish or fail with their deadline. */
  close(): void {
    this.#client.close();
  }

  #unary<Res>(
    method: string,
    metadata: Metadata,
    signal: AbortSignal | undefined,
    invoke: (md: Metadata, options: CallOptions, callback: UnaryCallback<Res>) => ClientUnaryCall,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      const cancel = () => call.cancel();
      const call = invoke(
        metadata,
        { deadline: Date.now() + this.#deadlineMs },
        (error, response) => {
          signal?.removeEventListener('abort', cancel);
          if (error) reject(new FleetCallError(method, this.address, error));
          else resolve(response);
        },
      );
      if (signal?.aborted) cancel();
      else signal?.addEventListener('abort', cancel, { once: true });
    });
  }
}

function authorized(credential: string): Metadata {
  const metadata = new Metadata();
  metadata.set(AUTHORIZATION_METADATA_KEY, bearer(credential));
  return metadata;
}
