import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { EdgeforgeError } from '../../common/errors.js';
import type { HardwareProfile } from '../../common/hardware/index.js';
import type { AccuracyFault, SimulatedFaults } from '../simulation/simulated-faults.js';

/**
 * What a profile override file says: a cpuinfo dump to read instead of /proc/cpuinfo, profile
 * fields that replace the detected ones, and hardware faults to simulate. Simulated devices are
 * built from these.
 */
export interface ProfileOverride {
  /** The override file itself, for error messages. */
  file: string;
  /** Absolute path; a relative one in the file is taken from the file's own folder. */
  cpuinfoFile?: string;
  /** Not validated here: they are checked once merged, where cores and threads meet. */
  fields: Partial<Record<keyof HardwareProfile, unknown>>;
  /** The `simulate` section, checked; absent when the file has none. */
  simulate?: SimulatedFaults;
}

export class ProfileOverrideError extends EdgeforgeError {
  override name = 'ProfileOverrideError';
  readonly file: string;
  /** The offending field, e.g. "threads" or "accelerators[0].kind"; "(file)" for the file itself. */
  readonly field: string;

  constructor(file: string, field: string, problem: string, options: { cause?: unknown } = {}) {
    super(`profile override file ${file}: ${problem}`, options);
    this.file = file;
    this.field = field;
  }
}

// Every HardwareProfile field, so that a misspelt key is an error instead of silently ignored.
const PROFILE_FIELDS: readonly (keyof HardwareProfile)[] = [
  'arch',
  'cpuVendor',
  'cpuModel',
  'cores',
  'threads',
  'isaFeatures',
  'memoryBytes',
  'accelerators',
  'onnxRuntime',
  'os',
  'deviceModel',
];

/** Reads and checks the shape of a profile override file; field values are checked on merge. */
export async function loadProfileOverride(file: string): Promise<ProfileOverride> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ProfileOverrideError(file, '(file)', `cannot be read (${(err as Error).message})`, {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ProfileOverrideError(file, '(file)', `is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ProfileOverrideError(
      file,
      '(file)',
      'must hold a JSON object such as {"cpuinfoFile": "pi4.txt", "memoryBytes": 4294967296}',
    );
  }
  const { cpuinfoFile, simulate, ...rest } = json as Record<string, unknown>;
  const override: ProfileOverride = { file, fields: {} };
  if (cpuinfoFile !== undefined) {
    if (typeof cpuinfoFile !== 'string' || cpuinfoFile.trim() === '') {
      throw new ProfileOverrideError(
        file,
        'cpuinfoFile',
        `field "cpuinfoFile" is ${JSON.stringify(cpuinfoFile)}; expected the path of a /proc/cpuinfo dump`,
      );
    }
    override.cpuinfoFile = resolve(dirname(file), cpuinfoFile);
  }
  if (simulate !== undefined) override.simulate = parseSimulate(file, simulate);
  for (const [key, value] of Object.entries(rest)) {
    if (!(PROFILE_FIELDS as readonly string[]).includes(key)) {
      throw new ProfileOverrideError(
        file,
        key,
        `field "${key}" is not a hardware profile field; expected cpuinfoFile, simulate or one of ${PROFILE_FIELDS.join(', ')}`,
      );
    }
    override.fields[key as keyof HardwareProfile] = value;
  }
  return override;
}

const FAULT_EXAMPLE = '{"variants": "int8_*", "flipShare": 0.3}';

/**
 * The `simulate` section: {"accuracyFaults": [{"variants": glob, "flipShare": 0..1}, ...],
 * "sharedHostLock": "path", "servingDelayMs": ms}.
 */
function parseSimulate(file: string, value: unknown): SimulatedFaults {
  const fail = (field: string, problem: string): never => {
    throw new ProfileOverrideError(file, field, `field "${field}" ${problem}`);
  };
  if (!isPlainObject(value)) {
    return fail(
      'simulate',
      `is ${JSON.stringify(value)}; expected an object such as {"accuracyFaults": [${FAULT_EXAMPLE}]}`,
    );
  }
  const { accuracyFaults = [], sharedHostLock, servingDelayMs, ...unknown } = value;
  for (const key of Object.keys(unknown)) {
    fail(
      `simulate.${key}`,
      'is not a simulation setting; expected accuracyFaults, sharedHostLock or servingDelayMs',
    );
  }
  if (
    servingDelayMs !== undefined &&
    (typeof servingDelayMs !== 'number' || !(servingDelayMs >= 0 && servingDelayMs <= 60_000))
  ) {
    fail(
      'simulate.servingDelayMs',
      `is ${JSON.stringify(servingDelayMs)}; expected the milliseconds every served request takes longer, 0 to 60000`,
    );
  }
  if (sharedHostLock !== undefined && (typeof sharedHostLock !== 'string' || !sharedHostLock)) {
    fail(
      'simulate.sharedHostLock',
      `is ${JSON.stringify(sharedHostLock)}; expected the path of a lock file the devices simulated on this host share`,
    );
  }
  if (!Array.isArray(accuracyFaults)) {
    return fail(
      'simulate.accuracyFaults',
      `is ${JSON.stringify(accuracyFaults)}; expected a list such as [${FAULT_EXAMPLE}]`,
    );
  }
  return {
    ...(sharedHostLock ? { sharedHostLock: resolve(dirname(file), sharedHostLock as string) } : {}),
    ...(servingDelayMs ? { servingDelayMs: servingDelayMs as number } : {}),
    accuracyFaults: accuracyFaults.map((fault: unknown, i): AccuracyFault => {
      const at = `simulate.accuracyFaults[${i}]`;
      if (!isPlainObject(fault)) {
        return fail(at, `is ${JSON.stringify(fault)}; expected an object such as ${FAULT_EXAMPLE}`);
      }
      const { variants, flipShare, ...others } = fault;
      for (const key of Object.keys(others)) {
        fail(
          `${at}.${key}`,
          'is not a field of an accuracy fault; expected variants and flipShare',
        );
      }
      if (typeof variants !== 'string' || variants === '') {
        fail(
          `${at}.variants`,
          `is ${JSON.stringify(variants)}; expected a non-empty glob over variant names, e.g. "int8_*"`,
        );
      }
      if (typeof flipShare !== 'number' || !(flipShare >= 0 && flipShare <= 1)) {
        fail(
          `${at}.flipShare`,
          `is ${JSON.stringify(flipShare)}; expected the share of top-1 predictions to flip, from 0 to 1`,
        );
      }
      return { variants: variants as string, flipShare: flipShare as number };
    }),
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
