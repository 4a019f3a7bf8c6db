import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  deriveHardwareClass,
  parseCpuinfo,
  validateHardwareProfile,
} from '../../common/hardware/index.js';
import { detectDevice, detectHardwareProfile } from './detect.js';
import { ProfileOverrideError } from './profile-override.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/cpuinfo/', import.meta.url));
const FIXTURE_FILES = readdirSync(FIXTURES).filter((f) => f.endsWith('.txt'));
const GiB = 1024 ** 3;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeforge-detect-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes an override file (JSON unless given text) and detects with it. */
async function detectWith(override: unknown) {
  const file = join(dir, 'profile.json');
  await writeFile(file, typeof override === 'string' ? override : JSON.stringify(override));
  return detectHardwareProfile({ profileOverrideFile: file });
}

async function overrideError(override: unknown): Promise<ProfileOverrideError> {
  const error = await detectWith(override).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ProfileOverrideError);
  return error as ProfileOverrideError;
}

describe('detectHardwareProfile on this machine', () => {
  it('returns a valid profile with the ONNX Runtime CPU provider', async () => {
    const profile = await detectHardwareProfile();
    expect(validateHardwareProfile(profile)).toEqual(profile);
    expect(profile.onnxRuntime.version).toMatch(/^1\.\d+\.\d+/);
    expect(profile.onnxRuntime.executionProviders).toContain('CPUExecutionProvider');
    expect(profile.memoryBytes).toBe(totalmem());
    expect(profile.threads).toBe(cpus().length);
    expect(profile.os.platform).toBe(process.platform);
    // Whatever it found classes cleanly.
    expect(deriveHardwareClass(profile).key).toMatch(/^[a-z0-9_]+-[a-z0-9]+-(no)?fp16-/);
  });
});

describe('detectHardwareProfile with a profile override file', () => {
  it.each(FIXTURE_FILES)('simulates %s from its cpuinfo dump alone', async (file) => {
    const summary = parseCpuinfo(readFileSync(join(FIXTURES, file), 'utf8'));
    const profile = await detectWith({ cpuinfoFile: join(FIXTURES, file) });
    expect(profile).toMatchObject({
      arch: summary.arch,
      cpuVendor: summary.vendor,
      cpuModel: summary.model,
      cores: summary.physicalCores,
      // The dump's count, not this machine's.
      threads: summary.logicalProcessors,
      isaFeatures: summary.isaFeatures,
      accelerators: [],
      memoryBytes: totalmem(),
    });
    expect(profile.deviceModel).toBe(summary.deviceModel);
    expect(profile.onnxRuntime.executionProviders).toContain('CPUExecutionProvider');
  });

  it('takes a relative cpuinfoFile from the override file’s folder', async () => {
    await writeFile(
      join(dir, 'pi5.txt'),
      readFileSync(join(FIXTURES, 'raspberry-pi-5.txt'), 'utf8'),
    );
    expect((await detectWith({ cpuinfoFile: 'pi5.txt' })).cpuModel).toBe('Cortex-A76');
  });

  it('replaces detected fields with the file’s, which decide the hardware class', async () => {
    const profile = await detectWith({
      cpuinfoFile: join(FIXTURES, 'jetson-xavier-agx.txt'),
      memoryBytes: 32 * GiB,
      accelerators: [{ kind: 'cuda', name: 'Xavier', computeCapability: '7.2' }],
      deviceModel: 'NVIDIA Jetson AGX Xavier',
      onnxRuntime: { version: '1.22.0', executionProviders: ['CUDAExecutionProvider'] },
    });
    expect(profile).toMatchObject({
      cpuModel: 'Carmel',
      memoryBytes: 32 * GiB,
      deviceModel: 'NVIDIA Jetson AGX Xavier',
      onnxRuntime: { version: '1.22.0', executionProviders: ['CUDAExecutionProvider'] },
    });
    expect(deriveHardwareClass(profile).key).toBe('aarch64-neon-fp16-cuda72-32g');
  });

  it('overrides fields of this machine’s profile when there is no cpuinfoFile', async () => {
    const profile = await detectWith({ memoryBytes: GiB });
    expect(profile.memoryBytes).toBe(GiB);
    expect(deriveHardwareClass(profile).memoryTier).toBe('1g');
  });

  it('names the file when it is not JSON', async () => {
    const error = await overrideError('{"memoryBytes": 1024,');
    expect(error.message).toMatch(/^profile override file .*profile\.json: is not valid JSON/);
    expect(error.field).toBe('(file)');
  });

  it('names the file when it does not exist', async () => {
    const missing = join(dir, 'nope.json');
    const detecting = detectHardwareProfile({ profileOverrideFile: missing });
    await expect(detecting).rejects.toThrow(ProfileOverrideError);
    await expect(detecting).rejects.toThrow(`${missing}: cannot be read`);
  });

  it.each([
    ['a JSON array', [], '(file)', /must hold a JSON object/],
    ['a misspelt field', { memoryByte: 1024 }, 'memoryByte', /not a hardware profile field/],
    ['a negative memory size', { memoryBytes: -1 }, 'memoryBytes', /"memoryBytes" is -1/],
    [
      'an unknown accelerator kind',
      { accelerators: [{ kind: 'tpu', name: 'Edge TPU' }] },
      'accelerators[0].kind',
      /one of cuda, npu, other/,
    ],
    ['more cores than threads', { cores: 64, threads: 2 }, 'threads', /from cores \(64\)/],
    [
      'a cpuinfoFile that is a number',
      { cpuinfoFile: 7 },
      'cpuinfoFile',
      /path of a \/proc\/cpuinfo/,
    ],
    ['a simulate section that is a list', { simulate: [] }, 'simulate', /expected an object/],
    [
      'an unknown simulated fault',
      { simulate: { accuracyFaults: [], thermalThrottle: true } },
      'simulate.thermalThrottle',
      /not a simulation setting; expected accuracyFaults, sharedHostLock or servingDelayMs/,
    ],
    [
      'a sharedHostLock that is not a path',
      { simulate: { sharedHostLock: 3 } },
      'simulate.sharedHostLock',
      /expected the path of a lock file/,
    ],
    [
      'a negative servingDelayMs',
      { simulate: { servingDelayMs: -5 } },
      'simulate.servingDelayMs',
      /"simulate\.servingDelayMs" is -5; expected the milliseconds every served request takes longer/,
    ],
    [
      'accuracyFaults that are not a list',
      { simulate: { accuracyFaults: { variants: 'int8_*', flipShare: 0.3 } } },
      'simulate.accuracyFaults',
      /expected a list/,
    ],
    [
      'a flipShare above 1',
      { simulate: { accuracyFaults: [{ variants: 'int8_*', flipShare: 30 }] } },
      'simulate.accuracyFaults[0].flipShare',
      /"simulate\.accuracyFaults\[0\]\.flipShare" is 30; expected the share .* from 0 to 1/,
    ],
    [
      'a negative flipShare',
      {
        simulate: {
          accuracyFaults: [
            { variants: '*', flipShare: 0.1 },
            { variants: '*', flipShare: -0.1 },
          ],
        },
      },
      'simulate.accuracyFaults[1].flipShare',
      /is -0\.1/,
    ],
    [
      'a flipShare that is a string',
      { simulate: { accuracyFaults: [{ variants: '*', flipShare: '30%' }] } },
      'simulate.accuracyFaults[0].flipShare',
      /is "30%"/,
    ],
    [
      'an empty variants glob',
      { simulate: { accuracyFaults: [{ variants: '', flipShare: 0.3 }] } },
      'simulate.accuracyFaults[0].variants',
      /is ""; expected a non-empty glob/,
    ],
    [
      'a missing variants glob',
      { simulate: { accuracyFaults: [{ flipShare: 0.3 }] } },
      'simulate.accuracyFaults[0].variants',
      /is undefined; expected a non-empty glob/,
    ],
    [
      'a misspelt accuracy fault field',
      { simulate: { accuracyFaults: [{ variants: '*', flipShare: 0.3, flipshare: 0.3 }] } },
      'simulate.accuracyFaults[0].flipshare',
      /not a field of an accuracy fault/,
    ],
  ])('names the field for %s', async (_, override, field, message) => {
    const error = await overrideError(override);
    expect(error.field).toBe(field);
    expect(error.message).toContain(join(dir, 'profile.json'));
    expect(error.message).toMatch(message);
  });

  it('reads the simulated faults next to the profile fields', async () => {
    const file = join(dir, 'profile.json');
    const simulate = {
      accuracyFaults: [
        { variants: 'int8_*', flipShare: 0.3 },
        { variants: 'fp16', flipShare: 0 },
      ],
    };
    await writeFile(
      file,
      JSON.stringify({
        cpuinfoFile: join(FIXTURES, 'raspberry-pi-4.txt'),
        cores: 1,
        threads: 1,
        simulate,
      }),
    );
    const device = await detectDevice({ profileOverrideFile: file });
    expect(device.simulate).toEqual(simulate);
    expect(device.profile).toMatchObject({ cpuModel: 'Cortex-A72', cores: 1, threads: 1 });
    // The profile the control plane sees is the same either way: faults are not hardware fields.
    expect(await detectHardwareProfile({ profileOverrideFile: file })).toEqual(device.profile);
  });

  it('simulates no faults without a simulate section, or without an override file', async () => {
    const file = join(dir, 'profile.json');
    await writeFile(file, JSON.stringify({ memoryBytes: GiB }));
    expect((await detectDevice({ profileOverrideFile: file })).simulate).toBeUndefined();
    expect((await detectDevice()).simulate).toBeUndefined();
  });

  it('names the cpuinfoFile when the dump is missing or not cpuinfo', async () => {
    const missing = await overrideError({ cpuinfoFile: 'missing.txt' });
    expect(missing.field).toBe('cpuinfoFile');
    expect(missing.message).toContain(join(dir, 'missing.txt'));

    await writeFile(join(dir, 'lscpu.txt'), 'Architecture: aarch64\nCPU(s): 4\n');
    const lscpu = await overrideError({ cpuinfoFile: 'lscpu.txt' });
    expect(lscpu.field).toBe('cpuinfoFile');
    expect(lscpu.message).toMatch(/lscpu\.txt\): no "processor : N" line found/);
  });
});
