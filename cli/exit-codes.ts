import { status } from '@grpc/grpc-js';
import {
  EdgeforgeError,
  MissingPrerequisiteError,
  ServiceUnreachableError,
} from '../common/errors.js';
import type { RolloutPhase } from '../common/rollout.js';
import { RolloutSpecError } from '../common/rollout-spec.js';
import { AdminCallError } from './admin-call-error.js';

/** What the rollout and demo commands' exit statuses mean; scripts can rely on them. */
export const EXIT = {
  /** Done; a rollout that finished succeeded (or is still running, for `status`). */
  ok: 0,
  /** The rollout failed or was cancelled, or something unexpected went wrong. */
  failed: 1,
  /** Bad flags or arguments, or a spec file that cannot run (the message names the field). */
  usage: 2,
  /** The control plane, Temporal or NATS could not be reached. */
  unreachable: 3,
  /** The rollout partially succeeded: some hardware classes got a new model, some did not. */
  partial: 4,
  /** Something this machine needs is missing or taken: the toolchain, a data set, a port. */
  prerequisite: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** For `--help`: the exit codes, one a line. */
export const EXIT_CODES_HELP = [
  'Exit codes:',
  '  0  success (a finished rollout succeeded; `status` of a running one)',
  '  1  the rollout failed or was cancelled, or an unexpected error',
  '  2  usage: bad flags or arguments, or a bad spec file (the message names the field)',
  '  3  services unreachable: the control plane, Temporal or NATS (start them with `edgeforge up`)',
  '  4  the rollout partially succeeded (some hardware classes failed or rolled back)',
  '  5  a prerequisite is missing or taken: toolchain, data set, port (`npm run bootstrap`)',
].join('\n');

/** The exit status a finished rollout's phase stands for; running phases are 0. */
export function exitCodeForPhase(phase: RolloutPhase): ExitCode {
  switch (phase) {
    case 'succeeded':
      return EXIT.ok;
    case 'partially_succeeded':
      return EXIT.partial;
    case 'failed':
    case 'cancelled':
      return EXIT.failed;
    default:
      return EXIT.ok;
  }
}

/** An error the CLI reports with its own message and exit status. */
export class CliError extends EdgeforgeError {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
  }
}

/** A problem with what the user typed or wrote (flags, a spec file): exit 2. */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, EXIT.usage, options);
  }
}

function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && chain.length < 10;) {
    chain.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return chain;
}

/** The address a listen failed on, when some error in the chain is EADDRINUSE. */
function addressInUse(err: unknown): string | undefined {
  for (const e of causes(err)) {
    const errno = e as NodeJS.ErrnoException & { address?: string; port?: number };
    if (errno.code === 'EADDRINUSE') {
      return errno.address !== undefined ? `${errno.address}:${errno.port ?? '?'}` : 'a port';
    }
  }
  return undefined;
}

/**
 * Any error as a CliError: the message a user can act on and the exit status it stands for.
 * A spec error names the field; unreachable services name the address and `edgeforge up`.
 */
export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof RolloutSpecError) {
    return new UsageError(`bad rollout spec: ${err.message}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof AdminCallError) {
    switch (err.code) {
      case status.INVALID_ARGUMENT:
      case status.ALREADY_EXISTS:
        return new UsageError(message, { cause: err });
      case status.FAILED_PRECONDITION:
        // The control plane runs without Temporal: rollouts cannot start or be read.
        return new CliError(message, EXIT.unreachable, { cause: err });
      case status.UNIMPLEMENTED:
        return new CliError(
          `${message}: the control plane is older than this edgeforge command; upgrade it`,
          EXIT.failed,
          { cause: err },
        );
      default:
        return new CliError(message, EXIT.failed, { cause: err });
    }
  }
  if (err instanceof ServiceUnreachableError) {
    return new CliError(message, EXIT.unreachable, { cause: err });
  }
  const inUse = addressInUse(err);
  if (inUse !== undefined) {
    return new CliError(
      `${message}\n${inUse} is in use by another process: stop that process (\`ss -ltnp\` shows ` +
        'which), or choose another port; for `edgeforge agent`, `--metrics 127.0.0.1:0 --serve ' +
        '127.0.0.1:0` pick free ones',
      EXIT.prerequisite,
      { cause: err },
    );
  }
  if (err instanceof MissingPrerequisiteError) {
    return new CliError(message, EXIT.prerequisite, { cause: err });
  }
  const name = err instanceof Error && err.name !== 'Error' ? `${err.name}: ` : '';
  return new CliError(`${name}${message}`, EXIT.failed, { cause: err });
}

/** Wraps a command action so that whatever it throws leaves with a meaningful exit status. */
export function withExitCodes<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      throw toCliError(err);
    }
  };
}
