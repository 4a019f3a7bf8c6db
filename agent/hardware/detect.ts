import { readFile } from 'node:fs/promises';
import { cpus, platform, release, totalmem } from 'node:os';
import {
  HardwareProfileError,
  parseCpuinfo,
  profileFromCpuinfo,
  validateHardwareProfile,
  type CpuinfoSummary,
  type HardwareProfile,
  type ProfileExtras,
} from '../../common/hardware/index.js';
import { MissingPrerequisiteError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { SimulatedFaults } from '../simulation/simulated-faults.js';
import { jetsonGpu } from './jetson.js';
import { queryNvidiaSmi } from './nvidia-smi.js';
import { detectOnnxRuntime } from './onnx-runtime.js';
import {
  loadProfileOverride,
  ProfileOverrideError,
  type ProfileOverride,
} from './profile-override.js';

const PROC_CPUINFO = '/proc/cpuinfo';
const DEVICE_TREE_MODEL = '/proc/device-tree/model';

export interface DetectHardwareOptions {
  /**
   * JSON file for simulated devices: `cpuinfoFile` (a /proc/cpuinfo dump read instead of this
   * machine's), any HardwareProfile fields, which replace the detected ones, and `simulate`
   * (hardware faults to pretend to have).
   */
  profileOverrideFile?: string;
  logger?: Logger;
}

/** What ONNX Runtime, memory and the OS say; the same for real and simulated devices. */
async function hostExtras(): Promise<Pick<ProfileExtras, 'memoryBytes' | 'os' | 'onnxRuntime'>> {
  return {
    memoryBytes: totalmem(),
    os: { platform: platform(), release: release() },
    onnxRuntime: await detectOnnxRuntime(),
  };
}

/** The board name ARM kernels expose, NUL-terminated; absent on x86 and in most containers. */
async function readDeviceTreeModel(): Promise<string | undefined> {
  try {
    const model = (await readFile(DEVICE_TREE_MODEL, 'utf8')).replace(/\0/g, '').trim();
    return model === '' ? undefined : model;
  } catch {
    return undefined;
  }
}

async function detectThisMachine(logger: Logger | undefined): Promise<HardwareProfile> {
  let cpuinfo: string;
  try {
    cpuinfo = await readFile(PROC_CPUINFO, 'utf8');
  } catch (err) {
    throw new MissingPrerequisiteError(
      `cannot read ${PROC_CPUINFO} (${(err as Error).message}): the agent detects hardware on ` +
        'Linux; elsewhere, give a profile override file with "cpuinfoFile" set to a Linux dump',
      { cause: err },
    );
  }
  const summary = parseCpuinfo(cpuinfo);
  const boardModel = await readDeviceTreeModel();
  const gpus = await queryNvidiaSmi(logger);
  const jetson = gpus.length === 0 && boardModel ? jetsonGpu(boardModel) : undefined;
  return profileFromCpuinfo(summary, {
    ...(await hostExtras()),
    accelerators: jetson ? [jetson] : gpus,
    // os.cpus() sees every online CPU even where cpuinfo was trimmed; cores stay cpuinfo's count.
    threads: cpus().length || undefined,
    deviceModel: boardModel,
  });
}

/**
 * A simulated device: CPU, board and thread count come from the dump alone (the host's GPU and
 * CPU count would be wrong for it); accelerators only from the override file.
 */
async function simulateFromDump(override: ProfileOverride, path: string): Promise<HardwareProfile> {
  let summary: CpuinfoSummary;
  try {
    summary = parseCpuinfo(await readFile(path, 'utf8'));
  } catch (err) {
    throw new ProfileOverrideError(
      override.file,
      'cpuinfoFile',
      `field "cpuinfoFile" (${path}): ${(err as Error).message}`,
      { cause: err },
    );
  }
  return profileFromCpuinfo(summary, await hostExtras());
}

/** What the agent knows about the device it runs on. */
export interface DetectedDevice {
  profile: HardwareProfile;
  /** Faults the override file asks to simulate; absent on a real device. */
  simulate?: SimulatedFaults;
}

/**
 * This device's hardware profile: /proc/cpuinfo, memory, OS, ONNX Runtime and its execution
 * providers, CUDA GPUs (nvidia-smi) and Jetson boards (device tree), then the override file's
 * fields on top. Throws ProfileOverrideError naming the file and field when the override is bad.
 */
export async function detectHardwareProfile(
  options: DetectHardwareOptions = {},
): Promise<HardwareProfile> {
  return (await detectDevice(options)).profile;
}

/** detectHardwareProfile, plus the faults a simulated device's override file asks for. */
export async function detectDevice(options: DetectHardwareOptions = {}): Promise<DetectedDevice> {
  if (options.profileOverrideFile === undefined) {
    return { profile: await detectThisMachine(options.logger) };
  }
  const override = await loadProfileOverride(options.profileOverrideFile);
  const detected =
    override.cpuinfoFile === undefined
      ? await detectThisMachine(options.logger)
      : await simulateFromDump(override, override.cpuinfoFile);
  let profile: HardwareProfile;
  try {
    profile = validateHardwareProfile({ ...detected, ...override.fields });
  } catch (err) {
    // The detected profile was valid on its own, so whatever fails now came from the file.
    if (!(err instanceof HardwareProfileError)) throw err;
    throw new ProfileOverrideError(override.file, err.field, err.message, { cause: err });
  }
  return override.simulate ? { profile, simulate: override.simulate } : { profile };
}
