import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { EdgeforgeError } from '../../common/errors.js';
import type { HardwareProfile } from '../../common/hardware/index.js';

/**
 * What a profile override file says: a cpuinfo dump to read instead of /proc/cpuinfo, and
 * profile fields that replace the detected ones. Simulated devices are built from these.
 */
export interface ProfileOverride {
  /** The override file itself, for error messages. */
  file: string;
  /** Absolute path; a relative one in the file is taken from the file's own folder. */
  cpuinfoFile?: string;
  /** Not validated here: they are checked once merged, where cores and threads meet. */
  fields: Partial<Record<keyof HardwareProfile, unknown>>;
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
  const { cpuinfoFile, ...rest } = json as Record<string, unknown>;
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
  for (const [key, value] of Object.entries(rest)) {
    if (!(PROFILE_FIELDS as readonly string[]).includes(key)) {
      throw new ProfileOverrideError(
        file,
        key,
        `field "${key}" is not a hardware profile field; expected cpuinfoFile or one of ${PROFILE_FIELDS.join(', ')}`,
      );
    }
    override.fields[key as keyof HardwareProfile] = value;
  }
  return override;
}
