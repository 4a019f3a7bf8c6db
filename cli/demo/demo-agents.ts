import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ManagedProcess, REPO_ROOT } from '../../services/stack/index.js';
import { DEVICE_KEY_FILE } from '../../agent/identity/device-key.js';
import { profileOverride, type DemoDevice } from './demo-config.js';

export interface RunningDemoAgent {
  device: DemoDevice;
  deviceId: string;
  hardwareClass: string;
  metricsUrl: string;
  inferenceUrl: string;
  overrideFile: string;
  logFile: string;
  process: ManagedProcess;
}

const READY =
  /agent ready device_id=(\S+) hardware_class=(\S+) metrics_url=(\S+) inference_url=(\S+)/;

/**
 * Starts one real `edgeforge agent` process per simulated device, each with its profile override
 * file, data dir and log under `dir`; resolves once every one has enrolled. The processes are
 * tethered to this one: they stop when it ends, however it ends.
 */
export async function startDemoAgents(options: {
  devices: readonly DemoDevice[];
  dir: string;
  controlPlane: string;
  enrollmentToken: string;
  logDir: string;
  onProgress?: (message: string) => void;
}): Promise<RunningDemoAgent[]> {
  const cpuinfoDir = join(REPO_ROOT, 'test', 'fixtures', 'cpuinfo');
  await mkdir(options.logDir, { recursive: true });
  const starting = options.devices.map(async (device) => {
    const home = join(options.dir, 'agents', device.name);
    // A fresh identity each run (every new stack listens on other ports), but the same device
    // key: enrolling again under the same name with it keeps the device id, where another key
    // would wait for an operator's approval.
    const data = join(home, 'data');
    const key = await readFile(join(data, DEVICE_KEY_FILE)).catch(() => undefined);
    await rm(data, { recursive: true, force: true });
    await mkdir(data, { recursive: true, mode: 0o700 });
    if (key) await writeFile(join(data, DEVICE_KEY_FILE), key, { mode: 0o600 });
    const overrideFile = join(home, 'profile.json');
    await writeFile(
      overrideFile,
      `${JSON.stringify(profileOverride(device, cpuinfoDir, join(options.dir, 'benchmark.lock')), null, 2)}\n`,
    );
    const logFile = join(options.logDir, `agent-${device.name}.log`);
    const proc = new ManagedProcess({
      name: `agent ${device.name}`,
      command: process.execPath,
      args: [
        '--import',
        'tsx',
        join(REPO_ROOT, 'cli', 'main.ts'),
        'agent',
        '--control-plane',
        options.controlPlane,
        '--device-name',
        device.name,
        '--data-dir',
        join(home, 'data'),
        '--profile',
        overrideFile,
        '--metrics',
        '127.0.0.1:0',
        '--serve',
        '127.0.0.1:0',
      ],
      cwd: REPO_ROOT,
      // The token travels in the environment, not on a command line other users can read.
      env: {
        ...process.env,
        EDGEFORGE_ENROLLMENT_TOKEN: options.enrollmentToken,
        EDGEFORGE_LOG_LEVEL: process.env.EDGEFORGE_LOG_LEVEL ?? 'info',
      },
      logFile,
    });
    try {
      const [, deviceId, hardwareClass, metricsUrl, inferenceUrl] = await proc.waitForLine(
        READY,
        90_000,
      );
      options.onProgress?.(`${device.name} enrolled as ${deviceId}, class ${hardwareClass}`);
      return {
        device,
        deviceId: deviceId!,
        hardwareClass: hardwareClass!,
        metricsUrl: metricsUrl!,
        inferenceUrl: inferenceUrl!,
        overrideFile,
        logFile,
        process: proc,
      };
    } catch (err) {
      await proc.stop();
      throw err;
    }
  });
  const settled = await Promise.allSettled(starting);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(
      settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.process.stop()] : [])),
    );
    throw failed.reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<RunningDemoAgent>).value);
}
