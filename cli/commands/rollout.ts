import { InvalidArgumentError, Option, type Command } from 'commander';
import { FINISHED_PHASES, type RolloutStatus } from '../../common/rollout.js';
import type { RolloutSummary } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import { runningStack, withAdmin, type AdminClient } from '../admin-client.js';
import { EXIT, EXIT_CODES_HELP, exitCodeForPhase, withExitCodes } from '../exit-codes.js';
import {
  formatDuration,
  renderResultTable,
  rolloutResult,
  textTable,
  writeResultFiles,
} from '../result/index.js';
import { openActivityProbe, type ActivityProbe } from '../rollout/activity-progress.js';
import { progressLines } from '../rollout/progress-view.js';
import { readSpecFile } from '../rollout/spec-file.js';
import { fetchRollout, fetchStatus, warningLines, watchRollout } from '../rollout/watch.js';

const CONNECTION_HELP = [
  '',
  'The control plane is EDGEFORGE_CONTROL_PLANE (host:port) with EDGEFORGE_ADMIN_TOKEN, or the',
  '`edgeforge up` running on this machine. Progress is on stderr; results and --json on stdout.',
  '',
  EXIT_CODES_HELP,
].join('\n');

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected seconds above 0');
  return n;
}

/** Temporal, for training progress: the local stack's, or EDGEFORGE_TEMPORAL_ADDRESS when set. */
export async function probeForProgress(): Promise<ActivityProbe | null> {
  const address = runningStack()?.temporalAddress ?? process.env.EDGEFORGE_TEMPORAL_ADDRESS;
  if (!address) return null;
  return openActivityProbe(address, process.env.EDGEFORGE_TEMPORAL_NAMESPACE ?? 'default');
}

interface ResultOptions {
  json?: boolean;
  out?: string;
}

/** Prints a (finished or running) rollout's result and writes --out files; returns the exit code. */
export async function reportResult(status: RolloutStatus, options: ResultOptions): Promise<number> {
  process.stdout.write(
    options.json
      ? `${JSON.stringify(status, null, 2)}\n`
      : renderResultTable(rolloutResult(status, Date.now())),
  );
  if (options.out) {
    const files = await writeResultFiles(options.out, status);
    process.stderr.write(`wrote ${files.markdown}\n      ${files.json}\n      ${files.svg}\n`);
  }
  return exitCodeForPhase(status.phase);
}

/** Follows a rollout with progress on stderr, then reports its result. */
export async function watchAndReport(
  admin: AdminClient,
  rolloutId: string,
  options: ResultOptions & { interval?: number },
): Promise<number> {
  const probe = await probeForProgress();
  const stderr = process.stderr;
  const onSigint = () => {
    stderr.write(
      `\nstopped watching; rollout ${rolloutId} keeps running. Follow it again with ` +
        `\`edgeforge rollout watch ${rolloutId}\`, or stop it with \`edgeforge rollout cancel ${rolloutId}\`\n`,
    );
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  try {
    const status = await watchRollout(admin, rolloutId, {
      out: stderr,
      live: Boolean(stderr.isTTY) && process.env.TERM !== 'dumb',
      intervalMs: (options.interval ?? (stderr.isTTY ? 1 : 2)) * 1000,
      probe,
    });
    return await reportResult(status, options);
  } finally {
    process.off('SIGINT', onSigint);
    await probe?.close();
  }
}

function summaryRow(r: RolloutSummary): string[] {
  const end = r.finishedAt?.getTime() ?? Date.now();
  const took = r.startedAt ? (end - r.startedAt.getTime()) / 1000 : null;
  return [
    r.rolloutId,
    r.phase.replaceAll('_', ' '),
    r.modelId || '-',
    String(r.hardwareClasses),
    `${r.devicesDone}/${r.devicesTotal}`,
    r.startedAt?.toISOString().replace(/\.\d+Z$/, 'Z') ?? '-',
    `${formatDuration(took)}${r.finishedAt ? '' : ' so far'}`,
    r.detail,
  ];
}

/** Runs `fn` with an admin client for the configured control plane, closed afterwards. */
export function registerRollout(program: Command): void {
  const rollout = program
    .command('rollout')
    .description('start, follow, list and cancel model rollouts')
    .addHelpText('after', CONNECTION_HELP);

  rollout
    .command('start <spec>')
    .description(
      'start a rollout from a spec file (JSON, or YAML for .yaml/.yml; see ' +
        'docs/examples/rollout-fashion-mnist.json); a bad field is named before anything starts',
    )
    .option('--watch', 'follow it until it finishes, then print the result')
    .option('--json', 'print JSON (the start response, or with --watch the final status)')
    .option('--out <dir>', 'with --watch: write result.md, result.json and result.svg here')
    .addOption(
      new Option('--interval <seconds>', 'with --watch: how often to poll').argParser(seconds),
    )
    .addHelpText('after', CONNECTION_HELP)
    .action(
      withExitCodes(
        async (
          file: string,
          options: ResultOptions & { watch?: boolean; interval?: number },
        ): Promise<void> => {
          const spec = await readSpecFile(file);
          await withAdmin(async (admin) => {
            const started = await admin.startRollout({ specJson: JSON.stringify(spec) });
            if (!options.watch) {
              process.stdout.write(
                options.json
                  ? `${JSON.stringify(started, null, 2)}\n`
                  : `started rollout ${started.rolloutId} (Temporal workflow ${started.workflowId})\n` +
                      `  follow it:  edgeforge rollout watch ${started.rolloutId}\n` +
                      `  stop it:    edgeforge rollout cancel ${started.rolloutId}\n`,
              );
              return;
            }
            process.stderr.write(
              `started rollout ${started.rolloutId} (Temporal workflow ${started.workflowId})\n`,
            );
            process.exitCode = await watchAndReport(admin, started.rolloutId, options);
          });
        },
      ),
    );

  rollout
    .command('status <rolloutId>')
    .description(
      "show a rollout: its progress while it runs, and the result table (each class's chosen " +
        'variant and why, latency, accuracy, speedups, the variants that lost) once it has one',
    )
    .option('--json', 'print the full status as JSON (RolloutStatus of common/rollout.ts)')
    .option('--out <dir>', 'write result.md, result.json and result.svg here')
    .addHelpText('after', CONNECTION_HELP)
    .action(
      withExitCodes(async (rolloutId: string, options: ResultOptions): Promise<void> => {
        await withAdmin(async (admin) => {
          const { status, warnings } = await fetchRollout(admin, rolloutId);
          if (!FINISHED_PHASES.includes(status.phase) && !options.json) {
            const elapsedSeconds = (Date.now() - Date.parse(status.startedAt)) / 1000;
            process.stderr.write(
              `${progressLines(status, [], { elapsedSeconds, ascii: !process.stderr.isTTY }).join('\n')}\n\n`,
            );
          }
          // On stderr, with --json too: stdout stays the status alone.
          for (const line of warningLines(warnings)) process.stderr.write(`${line}\n`);
          process.exitCode = await reportResult(status, options);
        });
      }),
    );

  rollout
    .command('watch <rolloutId>')
    .description(
      'follow a rollout live (phase, training, per-class phase, devices done/total, waves) ' +
        'until it ends, then print the result; Ctrl-C stops watching, not the rollout',
    )
    .option('--json', 'print the final status as JSON')
    .option('--out <dir>', 'write result.md, result.json and result.svg here')
    .addOption(new Option('--interval <seconds>', 'how often to poll').argParser(seconds))
    .addHelpText('after', CONNECTION_HELP)
    .action(
      withExitCodes(
        async (
          rolloutId: string,
          options: ResultOptions & { interval?: number },
        ): Promise<void> => {
          await withAdmin(async (admin) => {
            process.exitCode = await watchAndReport(admin, rolloutId, options);
          });
        },
      ),
    );

  rollout
    .command('list')
    .description('list rollouts, newest first')
    .option('--json', 'print JSON')
    .addOption(
      new Option('--limit <n>', 'at most this many').default(50).argParser((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1)
          throw new InvalidArgumentError('expected a whole number above 0');
        return n;
      }),
    )
    .addHelpText('after', CONNECTION_HELP)
    .action(
      withExitCodes(async (options: { json?: boolean; limit: number }): Promise<void> => {
        await withAdmin(async (admin) => {
          const rollouts: RolloutSummary[] = [];
          let pageToken = '';
          do {
            const page = await admin.listRollouts({
              pageSize: Math.min(1000, options.limit - rollouts.length),
              pageToken,
            });
            rollouts.push(...page.rollouts);
            pageToken = page.nextPageToken;
          } while (pageToken && rollouts.length < options.limit);
          if (options.json) {
            process.stdout.write(`${JSON.stringify(rollouts, null, 2)}\n`);
            return;
          }
          process.stdout.write(
            `${textTable([
              ['ROLLOUT', 'PHASE', 'MODEL', 'CLASSES', 'DEVICES', 'STARTED', 'TOOK', 'DETAIL'],
              ...rollouts.map(summaryRow),
            ])}\n${rollouts.length} rollout(s)\n`,
          );
        });
      }),
    );

  rollout
    .command('cancel <rolloutId>')
    .description('stop a rollout; every device it changed goes back to the model it ran before')
    .option('--reason <text>', 'recorded in the rollout result')
    .addHelpText('after', CONNECTION_HELP)
    .action(
      withExitCodes(async (rolloutId: string, options: { reason?: string }): Promise<void> => {
        await withAdmin(async (admin) => {
          const { cancelled } = await admin.cancelRollout({
            rolloutId,
            reason: options.reason ?? '',
          });
          if (cancelled) {
            process.stdout.write(
              `cancelling rollout ${rolloutId}: every device it changed goes back to its earlier ` +
                `model.\n  \`edgeforge rollout watch ${rolloutId}\` shows when that is done\n`,
            );
            return;
          }
          const status = await fetchStatus(admin, rolloutId).catch(() => null);
          process.stdout.write(
            `rollout ${rolloutId} had already finished${status ? ` (${status.phase.replaceAll('_', ' ')})` : ''}: nothing to cancel\n`,
          );
          process.exitCode = EXIT.ok;
        });
      }),
    );
}
