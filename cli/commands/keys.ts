import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { ServiceUnreachableError } from '../../common/errors.js';
import { MAX_RESPONSE_BYTES } from '../../common/fleet-api.js';
import { callUnary, type UnaryMethod } from '../../common/grpc-unary.js';
import { AdminServiceService } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import { AdminCallError } from '../admin-call-error.js';
import { resolveAdminTarget } from '../admin-client.js';
import { EXIT_CODES_HELP, UsageError, withExitCodes } from '../exit-codes.js';

/** One AdminService call with the admin credential and a deadline; errors a user can act on. */
async function adminCall<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
  const target = resolveAdminTarget();
  const client = new Client(target.address, credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
  });
  try {
    return await callUnary(client, method, request, { credential: target.adminToken });
  } catch (err) {
    const e = err as ServiceError;
    if (e.code === status.DEADLINE_EXCEEDED || e.code === status.UNAVAILABLE) {
      throw new ServiceUnreachableError(
        `cannot reach the control plane at ${target.address} (${e.details}): is it running? ` +
          'Start the embedded stack with `edgeforge up`, or check EDGEFORGE_CONTROL_PLANE.',
        { cause: err },
      );
    }
    if (e.code === undefined) throw err;
    throw new AdminCallError(e.code, e.details, { cause: err });
  } finally {
    client.close();
  }
}

function wholeHours(value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--grace-hours ${value}: not a whole number`);
  return Number(value);
}

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description("rotate the fleet's keys without enrolling devices again");

  keys
    .command('rotate-manifest')
    .description(
      'make a new manifest signing key current: agents pin it on their next heartbeat (each ' +
        'checks it is signed by the key it pins), and new manifests are signed with it',
    )
    .option(
      '--grace-hours <hours>',
      'how long agents keep accepting manifests signed by the previous key (default 720: 30 days)',
    )
    .option(
      '--retire-previous',
      'the previous key leaked: no grace, agents refuse its manifests as soon as they pin the new key',
    )
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async (options: { graceHours?: string; retirePrevious?: boolean }) => {
        const graceHours = options.graceHours === undefined ? 0 : wholeHours(options.graceHours);
        if (options.retirePrevious && graceHours > 0) {
          throw new UsageError('--retire-previous and --grace-hours exclude each other');
        }
        const rotated = await adminCall(AdminServiceService.rotateManifestKey, {
          graceHours,
          retirePreviousKey: Boolean(options.retirePrevious),
        });
        process.stdout.write(
          `manifest signing key is now version ${rotated.version} ` +
            `(${rotated.publicKey.toString('base64')})\n` +
            `agents accept the previous key until ${rotated.previousKeyValidUntil?.toISOString() ?? '-'}; ` +
            'release tracks are signed with the new key at their next rollout\n',
        );
      }),
    );

  keys
    .command('rotate-credential')
    .description(
      'add a new device credential key: devices get credentials signed with it on their next ' +
        'heartbeat; older keys stay accepted until the credentials they signed expire',
    )
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async () => {
        const rotated = await adminCall(AdminServiceService.rotateCredentialKey, {});
        const older = rotated.keys
          .filter((k) => k.keyId !== rotated.keyId)
          .map((k) => `key ${k.keyId} until ${k.acceptedUntil?.toISOString() ?? '-'}`);
        process.stdout.write(
          `device credentials are now signed with key ${rotated.keyId}` +
            (older.length > 0 ? `; still accepted: ${older.join(', ')}` : '') +
            '\n',
        );
      }),
    );
}
