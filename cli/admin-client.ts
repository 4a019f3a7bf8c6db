import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { MAX_RESPONSE_BYTES } from '../common/fleet-api.js';
import { callUnary, type UnaryMethod } from '../common/grpc-unary.js';
import { ServiceUnreachableError } from '../common/errors.js';
import { AdminCallError } from './admin-call-error.js';
import { AdminServiceService } from '../proto/gen/edgeforge/v1/admin.pb.js';
import type { StackEndpoints } from '../services/stack/index.js';
import { dataDir } from './stack-session.js';

export interface AdminTarget {
  address: string;
  adminToken: string;
}

/**
 * Where the CLI finds the control plane: EDGEFORGE_CONTROL_PLANE and EDGEFORGE_ADMIN_TOKEN, or
 * else the embedded stack that `edgeforge up` runs on this machine.
 */
export function resolveAdminTarget(env: NodeJS.ProcessEnv = process.env): AdminTarget {
  const endpoints = runningStack();
  const address = env.EDGEFORGE_CONTROL_PLANE ?? endpoints?.controlPlaneAddress;
  const adminToken =
    env.EDGEFORGE_ADMIN_TOKEN ??
    (endpoints && existsSync(endpoints.adminTokenFile)
      ? readFileSync(endpoints.adminTokenFile, 'utf8').trim()
      : undefined);
  if (!address || !adminToken) {
    throw new ServiceUnreachableError(
      'no control plane to talk to: start the embedded stack with `edgeforge up`, or set ' +
        'EDGEFORGE_CONTROL_PLANE (host:port) and EDGEFORGE_ADMIN_TOKEN',
    );
  }
  return { address, adminToken };
}

/** The endpoints of an `edgeforge up` that is still running, if any. */
export function runningStack(): StackEndpoints | undefined {
  const file = join(dataDir(), 'endpoints.json');
  if (!existsSync(file)) return undefined;
  const endpoints = JSON.parse(readFileSync(file, 'utf8')) as StackEndpoints;
  try {
    process.kill(endpoints.pid, 0);
    return endpoints;
  } catch {
    return undefined; // Left behind by a stack that was killed.
  }
}

/** AdminService calls with the admin credential, a deadline, and errors a user can act on. */
export function adminClient(target: AdminTarget) {
  const client = new Client(target.address, credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
  });
  const call =
    <Req, Res>(method: UnaryMethod<Req, Res>) =>
    (request: Req): Promise<Res> =>
      callUnary(client, method, request, { credential: target.adminToken }).catch(
        (err: ServiceError) => {
          throw explain(err, target.address);
        },
      );
  return {
    listDevices: call(AdminServiceService.listDevices),
    getDevice: call(AdminServiceService.getDevice),
    startRollout: call(AdminServiceService.startRollout),
    getRollout: call(AdminServiceService.getRollout),
    listRollouts: call(AdminServiceService.listRollouts),
    cancelRollout: call(AdminServiceService.cancelRollout),
    revokeDevice: call(AdminServiceService.revokeDevice),
    deleteDevice: call(AdminServiceService.deleteDevice),
    listPendingEnrollments: call(AdminServiceService.listPendingEnrollments),
    approvePendingEnrollment: call(AdminServiceService.approvePendingEnrollment),
    rejectPendingEnrollment: call(AdminServiceService.rejectPendingEnrollment),
    createEnrollmentToken: call(AdminServiceService.createEnrollmentToken),
    close: () => client.close(),
  };
}

export type AdminClient = ReturnType<typeof adminClient>;

/** grpc-js's wording when no connection could be made (as opposed to the server's own answer). */
const NO_CONNECTION =
  /No connection established|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|failed to connect|Connection dropped/i;

function explain(err: ServiceError, address: string): Error {
  const unreachable =
    err.code === status.DEADLINE_EXCEEDED ||
    (err.code === status.UNAVAILABLE && NO_CONNECTION.test(err.details ?? ''));
  if (unreachable) {
    return new ServiceUnreachableError(
      `cannot reach the control plane at ${address} (${err.details}): is it running? ` +
        'Start the embedded stack with `edgeforge up`, or check EDGEFORGE_CONTROL_PLANE.',
      { cause: err },
    );
  }
  if (err.code === status.UNAVAILABLE) {
    // The control plane answered: a service behind it (Temporal, NATS) is down.
    return new ServiceUnreachableError(
      `the control plane at ${address} cannot do this now: ${err.details}`,
      { cause: err },
    );
  }
  if (err.code === undefined) return err;
  return new AdminCallError(err.code, err.details, { cause: err });
}

/** Runs `fn` with an admin client for the configured control plane, closing it afterwards. */
export async function withAdmin<T>(fn: (admin: AdminClient) => Promise<T>): Promise<T> {
  const admin = adminClient(resolveAdminTarget());
  try {
    return await fn(admin);
  } finally {
    admin.close();
  }
}
