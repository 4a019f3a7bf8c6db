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
  const fleet = program.command('fleet').description('look at the devices enrolled in the fleet');

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
        });
      }),
    );
}
