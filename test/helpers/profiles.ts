import { readFileSync } from 'node:fs';
import {
  parseCpuinfo,
  profileFromCpuinfo,
  type HardwareProfile,
  type ProfileExtras,
} from '../../common/hardware/index.js';
import { REPO_ROOT } from '../../services/stack/index.js';

export const CPUINFO_FIXTURES = `${REPO_ROOT}test/fixtures/cpuinfo`;

/** A device profile built from one of the real /proc/cpuinfo dumps in test/fixtures/cpuinfo. */
export function fixtureProfile(
  fixture: string,
  extras: Partial<ProfileExtras> = {},
): HardwareProfile {
  const summary = parseCpuinfo(readFileSync(`${CPUINFO_FIXTURES}/${fixture}.txt`, 'utf8'));
  return profileFromCpuinfo(summary, {
    memoryBytes: 4 * 1024 ** 3,
    os: { platform: 'linux', release: '6.1.0' },
    onnxRuntime: { version: '1.30.0', executionProviders: ['CPUExecutionProvider'] },
    ...extras,
  });
}
