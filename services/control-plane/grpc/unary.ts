import { status, type handleUnaryCall, type Metadata, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ServiceUnreachableError } from '../../../common/errors.js';
import { AUTHORIZATION_METADATA_KEY } from '../../../common/fleet-api.js';
import {
  PermissionDeniedError,
  UnauthenticatedError,
  secretMatches,
  type CredentialAuthority,
  type DeviceCredentialClaims,
} from '../auth/credentials.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { deviceIdFor } from '../registry/device-id.js';
import { toGrpcStatus } from './errors.js';
import { decodeFailure } from './request-decoding.js';

/** Who may call a method. */
export type Role = 'anyone' | 'device' | 'admin';

export type Caller =
  { role: 'anyone' } | { role: 'device'; claims: DeviceCredentialClaims } | { role: 'admin' };

export interface UnaryContext {
  authority: CredentialAuthority;
  adminToken: string;
  metrics: ControlPlaneMetrics;
  log: Logger;
  /**
   * Why a device with a valid credential is refused (PERMISSION_DENIED) before its call runs:
   * revoked by an operator. Undefined to let it through.
   */
  deviceRefusal?: (deviceId: string) => string | undefined;
  /**
   * Why FleetService calls cannot be served now (NATS, where the registry lives, is down):
   * answered UNAVAILABLE at once rather than after the call's deadline. Undefined when they can.
   */
  fleetUnavailable?: () => string | undefined;
}

const FLEET_SERVICE = 'edgeforge.v1.FleetService';

/**
 * Wraps a handler with what every call needs: authentication for its role, the refusal of a
 * request that did not decode, error → status mapping, metrics by method and code, and a log line
 * carrying the device id.
 */
export function unary<Req, Res>(
  ctx: UnaryContext,
  service: string,
  method: string,
  role: Role,
  handler: (request: Req, caller: Caller, log: Logger) => Promise<Res> | Res,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const started = process.hrtime.bigint();
    let log = ctx.log;
    const finish = (code: status) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      ctx.metrics.grpcHandled.inc({
        grpc_service: service,
        grpc_method: method,
        grpc_code: status[code],
      });
      ctx.metrics.grpcDuration.observe({ grpc_service: service, grpc_method: method }, seconds);
    };
    const run = async (): Promise<[null, Res] | [{ code: status; details: string }]> => {
      try {
        const caller = authenticate(ctx, role, call.metadata);
        if (caller.role === 'device') log = log.child({ deviceId: caller.claims.deviceId });
        // A request whose bytes did not decode (see withRequestDecoding): refused by field.
        const undecodable = decodeFailure(call.request);
        if (undecodable) throw undecodable;
        checkClientCertificate(call, caller);
        const unavailable = service === FLEET_SERVICE ? ctx.fleetUnavailable?.() : undefined;
        if (unavailable) throw new ServiceUnreachableError(unavailable);
        const response = await handler(call.request, caller, log);
        finish(status.OK);
        return [null, response];
      } catch (err) {
        const { code, details } = toGrpcStatus(err);
        finish(code);
        if (code === status.INTERNAL || code === status.UNAVAILABLE) {
          log.error({ err, method }, 'call failed');
        } else {
          log.info({ method, code: status[code], details }, 'call refused');
        }
        return [{ code, details }];
      }
    };
    void run().then((answer) => {
      // Answering must not throw out of here: an unhandled rejection would end the process.
      try {
        if (answer[0] === null) callback(null, answer[1]);
        else callback(answer[0]);
      } catch (err) {
        log.error({ err, method }, 'could not send the answer');
        try {
          callback({ code: status.INTERNAL, details: 'internal error sending the answer' });
        } catch {
          // The call is beyond answering; grpc-js ends it when the client goes.
        }
      }
    });
  };
}

function authenticate(ctx: UnaryContext, role: Role, metadata: Metadata): Caller {
  if (role === 'anyone') return { role };
  const header = metadata.get(AUTHORIZATION_METADATA_KEY)[0];
  const token = typeof header === 'string' ? /^Bearer (.+)$/.exec(header)?.[1] : undefined;
  if (!token) {
    throw new UnauthenticatedError(
      `missing "${AUTHORIZATION_METADATA_KEY}: Bearer <credential>" metadata` +
        (role === 'device' ? ': enroll to get a device credential' : ': pass the admin credential'),
    );
  }
  const isAdmin = secretMatches(token, ctx.adminToken);
  if (role === 'admin') {
    if (isAdmin) return { role };
    // A working device credential on an admin call is a permissions problem, not a bad login.
    if (isDeviceCredential(ctx, token)) {
      throw new PermissionDeniedError(
        'a device credential cannot call AdminService; use the admin credential',
      );
    }
    throw new UnauthenticatedError('the admin credential is wrong');
  }
  if (isAdmin) {
    throw new PermissionDeniedError(
      'the admin credential cannot call FleetService; agents use device credentials',
    );
  }
  const claims = ctx.authority.verify(token);
  const refusal = ctx.deviceRefusal?.(claims.deviceId);
  if (refusal) throw new PermissionDeniedError(refusal, { context: { deviceId: claims.deviceId } });
  return { role, claims };
}

function isDeviceCredential(ctx: UnaryContext, token: string): boolean {
  try {
    ctx.authority.verify(token);
    return true;
  } catch {
    return false;
  }
}

/**
 * With mTLS (EDGEFORGE_CP_TLS_CLIENT_CA) a device calls with a certificate of its own: its
 * subject CN names the device, by its device id (`d-…`) or by the device name it enrolls with,
 * which a factory PKI can write into the certificate before the device has an id (the id is
 * the name's hash). A device call must present the certificate of the device its credential
 * is for, and an Enroll (no id yet) one for the name it enrolls, so that a stolen credential or
 * one device's certificate cannot act as another device. Admin calls are not checked: the admin
 * credential is the proof. Without mTLS, grpc-js reports no peer certificate and nothing is
 * checked (the server requested none).
 */
function checkClientCertificate(call: ServerUnaryCall<unknown, unknown>, caller: Caller): void {
  const certificate = call.getAuthContext().sslPeerCertificate;
  if (!certificate || caller.role === 'admin') return;
  let expected: string;
  let what: string;
  if (caller.role === 'device') {
    expected = caller.claims.deviceId;
    what = `the credential is device ${expected}'s`;
  } else {
    // Of the calls open to anyone, Enroll names the device (an empty name is refused by field).
    const name = (call.request as { deviceName?: unknown } | null)?.deviceName;
    if (typeof name !== 'string' || name === '') return;
    expected = deviceIdFor(name);
    what = `the request enrolls ${JSON.stringify(name)} (device ${expected})`;
  }
  const cn = commonName(certificate.subject?.CN);
  if (cn === undefined) {
    throw new PermissionDeniedError(
      `the client certificate has no subject CN, but ${what}: a device's certificate names it ` +
        'in its CN (device id or device name)',
      { context: { deviceId: expected } },
    );
  }
  const named = DEVICE_ID.test(cn) ? cn : deviceIdFor(cn);
  if (named !== expected) {
    throw new PermissionDeniedError(
      `the client certificate is for ${JSON.stringify(cn)} (device ${named}), but ${what}: ` +
        'each device calls with its own certificate (subject CN = its device id or device name)',
      { context: { deviceId: expected } },
    );
  }
}

/** A CN as Node reports it: a string, or an array when the subject repeats it (refused). */
function commonName(cn: string | string[] | undefined): string | undefined {
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

const DEVICE_ID = /^d-[0-9a-f]{20}$/;
