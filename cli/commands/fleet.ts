import { InvalidArgumentError, type Command } from 'commander';
import {
  Connectivity,
  type Device,
  type PendingEnrollment,
} from '../../proto/gen/edgeforge/v1/admin.pb.js';
import { DeviceState } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { withAdmin } from '../admin-client.js';
import { EXIT_CODES_HELP, withExitCodes } from '../exit-codes.js';

const connectivity = (c: Connectivity) =>
  Connectivity[c].replace('CONNECTIVITY_', '').toLowerCase();
const state = (s: DeviceState) => DeviceState[s].replace('DEVICE_STATE_', '').toLowerCase();

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function registerFleet(program: Command): void {
  const fleet = program
    .command('fleet')
    .description(
      'look at the devices enrolled in the fleet; revoke or delete one; approve new device keys',
    );

  fleet
    .command('ls')
    .description('list devices with their hardware class, state and connectivity')
    .option('--class <hardwareClass>', 'only devices of this hardware class')
    .option('--json', 'print JSON')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async (options: { class?: string; json?: boolean }) => {
        await withAdmin(async (admin) => {
          const devices: Device[] = [];
          let pageToken = '';
          do {
            const page = await admin.listDevices({
              hardwareClass: options.class ?? '',
              pageSize: 1000,
              pageToken,
            });
            devices.push(...page.devices);
            pageToken = page.nextPageToken;
          } while (pageToken);
          if (options.json) {
            process.stdout.write(`${JSON.stringify(devices, null, 2)}\n`);
            return;
          }
          const rows = devices.map((d) => [
            d.deviceId,
            d.deviceName,
            d.hardwareClass,
            state(d.state),
            // A revoked device shows "revoked" here, whatever its last heartbeat.
            connectivity(d.connectivity),
            d.activeModel ? `${d.activeModel.modelId}/${d.activeModel.variant}` : '-',
            d.lastSeenAt?.toISOString() ?? '-',
          ]);
          process.stdout.write(
            `${table([['DEVICE', 'NAME', 'HARDWARE CLASS', 'STATE', 'CONNECTIVITY', 'MODEL', 'LAST SEEN'], ...rows])}\n` +
              `${devices.length} device(s)\n`,
          );
        });
      }),
    );

  fleet
    .command('show <deviceId>')
    .description("show one device's record, hardware profile included")
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async (deviceId: string) => {
        await withAdmin(async (admin) => {
          const { device } = await admin.getDevice({ deviceId });
          process.stdout.write(`${JSON.stringify(device, null, 2)}\n`);
          if (device?.revokedAt) process.stderr.write(`${revokedLine(device)}\n`);
        });
      }),
    );

  fleet
    .command('revoke <deviceId>')
    .description(
      'cut a device off: its credential stops working at once and its name cannot enrol again until it is deleted (idempotent)',
    )
    .option('--reason <text>', 'why; shown to the device in its refusals and in `fleet show`', '')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async (deviceId: string, options: { reason: string }) => {
        await withAdmin(async (admin) => {
          const { device, revoked } = await admin.revokeDevice({
            deviceId,
            reason: options.reason,
          });
          process.stdout.write(
            device
              ? `${revoked ? '' : 'already '}${revokedLine(device)}\n`
              : `revoked ${deviceId}\n`,
          );
        });
      }),
    );

  fleet
    .command('delete <deviceId>')
    .description(
      "remove a device's record: its next call fails as an unknown device, and its name may enrol again as a new device",
    )
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async (deviceId: string) => {
        await withAdmin(async (admin) => {
          await admin.deleteDevice({ deviceId });
          process.stdout.write(`deleted ${deviceId}\n`);
        });
      }),
    );

  fleet
    .command('pending')
    .description(
      'list enrolments waiting for approval: an enrolled name asking to enrol with another device key',
    )
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nBefore approving, compare KEY with the "device key fingerprint" the device\'s agent logs: ' +
        'anyone with the fleet enrollment token can ask.\n\n' +
        EXIT_CODES_HELP,
    )
    .action(
      withExitCodes(async (options: { json?: boolean }) => {
        await withAdmin(async (admin) => {
          const { pending } = await admin.listPendingEnrollments({});
          if (options.json) {
            process.stdout.write(`${JSON.stringify(pending, null, 2)}\n`);
            return;
          }
          const rows = pending.map((p) => [
            p.pendingId,
            p.deviceName,
            short(p.keyFingerprint),
            short(p.currentKeyFingerprint),
            p.requestedAt?.toISOString() ?? '-',
            p.expiresAt?.toISOString() ?? '-',
          ]);
          process.stdout.write(
            `${table([['PENDING ID', 'NAME', 'KEY', 'CURRENT KEY', 'REQUESTED', 'EXPIRES'], ...rows])}\n` +
              `${pending.length} pending enrolment(s)\n`,
          );
        });
      }),
    );

  fleet
    .command('approve <pendingId>')
    .description(
      "give the device the pending request's key: credentials issued before stop working, and the device enrols with the new key",
    )
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async (pendingId: string) => {
        await withAdmin(async (admin) => {
          const { approved } = await admin.approvePendingEnrollment({ pendingId });
          process.stdout.write(
            approved
              ? `approved ${pendingLine(approved)}: the device enrols with it on its next try\n`
              : `approved ${pendingId}\n`,
          );
        });
      }),
    );

  fleet
    .command('reject <pendingId>')
    .description('drop a pending enrolment; the device keeps the key it has')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async (pendingId: string) => {
        await withAdmin(async (admin) => {
          await admin.rejectPendingEnrollment({ pendingId });
          process.stdout.write(`rejected ${pendingId}\n`);
        });
      }),
    );

  fleet
    .command('token <deviceName>')
    .description(
      'print a one-time enrollment token for one device name: valid once, until it expires; for an enrolled name it also lets the device enrol with a new key',
    )
    .option(
      '--ttl <duration>',
      'how long it is valid: 90s, 30m, 1h, 7d (at most 7 days)',
      ttl,
      3600,
    )
    .addHelpText(
      'after',
      '\nThe token is printed once (stdout) and stored only as its sha256; give it to the device ' +
        'as its enrollment token.\n\n' +
        EXIT_CODES_HELP,
    )
    .action(
      withExitCodes(async (deviceName: string, options: { ttl: number }) => {
        await withAdmin(async (admin) => {
          const { enrollmentToken, expiresAt, deviceId } = await admin.createEnrollmentToken({
            deviceName,
            ttlSeconds: options.ttl,
          });
          process.stdout.write(`${enrollmentToken}\n`);
          process.stderr.write(
            `one-time enrollment token for ${deviceName} (${deviceId}), valid once until ` +
              `${expiresAt?.toISOString() ?? '-'}\n`,
          );
        });
      }),
    );
}

const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `30m`, `1h`, `7d` or plain seconds, as whole seconds. */
function ttl(value: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(value.trim());
  const seconds = match ? Number(match[1]) * TTL_UNITS[match[2] || 's']! : NaN;
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > 7 * 86400) {
    throw new InvalidArgumentError('expected a duration from 1s to 7d, such as 90s, 30m, 1h or 7d');
  }
  return seconds;
}

/**
 * A fingerprint as the table shows it: the first 128 bits, too many for anyone to make a key that
 * shares them; the whole one is in --json and in the agent's log.
 */
function short(fingerprint: string): string {
  return fingerprint ? `${fingerprint.slice(0, 32)}…` : '-';
}

function pendingLine(p: PendingEnrollment): string {
  return `${p.pendingId} for ${p.deviceId} (${p.deviceName}), key sha256 ${p.keyFingerprint}`;
}

function revokedLine(device: Device): string {
  return (
    `revoked ${device.deviceId} (${device.deviceName}) at ${device.revokedAt?.toISOString() ?? '-'}` +
    (device.revokedReason ? `: ${device.revokedReason}` : '')
  );
}
