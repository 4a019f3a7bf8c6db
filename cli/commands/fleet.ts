import type { Command } from 'commander';
import { Connectivity, type Device } from '../../proto/gen/edgeforge/v1/admin.pb.js';
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
    .description('look at the devices enrolled in the fleet; revoke or delete one');

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
}

function revokedLine(device: Device): string {
  return (
    `revoked ${device.deviceId} (${device.deviceName}) at ${device.revokedAt?.toISOString() ?? '-'}` +
    (device.revokedReason ? `: ${device.revokedReason}` : '')
  );
}
