import { describe, expect, it } from 'vitest';
import { HardwareProfileError, validateHardwareProfile, type HardwareProfile } from './profile.js';

const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

const valid: HardwareProfile = {
  arch: 'aarch64',
  cpuVendor: 'ARM',
  cpuModel: 'Cortex-A76',
  cores: 4,
  threads: 4,
  isaFeatures: ['neon', 'asimd', 'asimddp', 'fphp', 'asimdhp'],
  memoryBytes: 8 * GiB,
  accelerators: [{ kind: 'cuda', name: 'Orin', computeCapability: '8.7', memoryBytes: 8 * GiB }],
  onnxRuntime: { version: '1.22.0', executionProviders: ['CPUExecutionProvider'] },
  os: { platform: 'linux', release: '6.6.31+rpt-rpi-2712' },
  deviceModel: 'Raspberry Pi 5 Model B Rev 1.0',
};

/** A copy of the valid profile with one change; JSON round-trip so nothing is shared. */
function withChange(change: (p: Record<string, unknown>) => void): unknown {
  const copy = JSON.parse(JSON.stringify(valid)) as Record<string, unknown>;
  change(copy);
  return copy;
}

describe('validateHardwareProfile', () => {
  it('accepts a valid profile and returns an equal, separate copy', () => {
    const result = validateHardwareProfile(valid);
    expect(result).toEqual(valid);
    expect(result).not.toBe(valid);
  });

  it('drops unknown keys and lower-cases ISA features', () => {
    const input = withChange((p) => {
      p.isaFeatures = ['AVX2', 'Amx_Int8'];
      p.secret = 'x';
    });
    const result = validateHardwareProfile(input);
    expect(result.isaFeatures).toEqual(['avx2', 'amx_int8']);
    expect(result).not.toHaveProperty('secret');
  });

  it('accepts a profile without accelerators or deviceModel', () => {
    const input = withChange((p) => {
      p.accelerators = [];
      delete p.deviceModel;
    });
    expect(validateHardwareProfile(input)).not.toHaveProperty('deviceModel');
  });

  const acc = (p: Record<string, unknown>) => (p.accelerators as Record<string, unknown>[])[0]!;
  const long = 'x'.repeat(257);

  it.each<[string, (p: Record<string, unknown>) => void, string]>([
    ['missing arch', (p) => delete p.arch, 'arch'],
    ['empty arch', (p) => (p.arch = ''), 'arch'],
    ['overlong cpuModel', (p) => (p.cpuModel = long), 'cpuModel'],
    ['numeric cpuVendor', (p) => (p.cpuVendor = 65), 'cpuVendor'],
    ['zero cores', (p) => (p.cores = 0), 'cores'],
    ['too many cores', (p) => (p.cores = 4097), 'cores'],
    ['fractional cores', (p) => (p.cores = 2.5), 'cores'],
    ['cores as string', (p) => (p.cores = '4'), 'cores'],
    ['threads below cores', (p) => (p.threads = 2), 'threads'],
    ['absurd threads per core', (p) => (p.threads = 400), 'threads'],
    ['missing threads', (p) => delete p.threads, 'threads'],
    ['zero memory', (p) => (p.memoryBytes = 0), 'memoryBytes'],
    ['negative memory', (p) => (p.memoryBytes = -1), 'memoryBytes'],
    ['more than 64 TiB', (p) => (p.memoryBytes = 64 * TiB + 1), 'memoryBytes'],
    ['features not an array', (p) => (p.isaFeatures = 'avx2 fma'), 'isaFeatures'],
    ['non-string feature', (p) => (p.isaFeatures = ['avx2', 7]), 'isaFeatures[1]'],
    ['overlong feature', (p) => (p.isaFeatures = [long]), 'isaFeatures[0]'],
    ['257 features', (p) => (p.isaFeatures = Array<string>(257).fill('avx')), 'isaFeatures'],
    ['accelerators missing', (p) => delete p.accelerators, 'accelerators'],
    ['accelerator not an object', (p) => (p.accelerators = ['cuda']), 'accelerators[0]'],
    ['unknown accelerator kind', (p) => (acc(p).kind = 'tpu'), 'accelerators[0].kind'],
    ['accelerator without name', (p) => delete acc(p).name, 'accelerators[0].name'],
    [
      'compute capability as number',
      (p) => (acc(p).computeCapability = 7.2),
      'accelerators[0].computeCapability',
    ],
    [
      'malformed compute capability',
      (p) => (acc(p).computeCapability = 'sm_72'),
      'accelerators[0].computeCapability',
    ],
    ['accelerator memory zero', (p) => (acc(p).memoryBytes = 0), 'accelerators[0].memoryBytes'],
    ['onnxRuntime missing', (p) => delete p.onnxRuntime, 'onnxRuntime'],
    [
      'onnxRuntime version missing',
      (p) => (p.onnxRuntime = { executionProviders: [] }),
      'onnxRuntime.version',
    ],
    [
      'execution provider not a string',
      (p) => (p.onnxRuntime = { version: '1.22.0', executionProviders: [null] }),
      'onnxRuntime.executionProviders[0]',
    ],
    ['os is a string', (p) => (p.os = 'linux'), 'os'],
    ['os platform missing', (p) => (p.os = { release: '6.1' }), 'os.platform'],
    ['deviceModel not a string', (p) => (p.deviceModel = { name: 'Pi' }), 'deviceModel'],
  ])('rejects %s', (_, change, field) => {
    let error: unknown;
    try {
      validateHardwareProfile(withChange(change));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HardwareProfileError);
    const err = error as HardwareProfileError;
    expect(err.name).toBe('HardwareProfileError');
    expect(err.field).toBe(field);
    expect(err.message).toContain(`"${field}"`);
    expect(err.message).toMatch(/; expected .+/);
  });

  it.each([null, 'profile', 42, []])('rejects %j as a whole', (value) => {
    expect(() => validateHardwareProfile(value)).toThrow(HardwareProfileError);
  });
});
