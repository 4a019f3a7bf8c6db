import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Accelerator } from '../../common/hardware/index.js';
import type { Logger } from '../../common/logger.js';

const QUERY = ['--query-gpu=name,compute_cap,memory.total', '--format=csv,noheader,nounits'];
// A healthy driver answers in well under a second; a wedged one must not stall the agent's start.
const TIMEOUT_MS = 5_000;
const MiB = 1024 ** 2;

/**
 * Parses `nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader,nounits`:
 * one "name, 8.6, 24576" line per GPU in device order, memory in MiB, "[N/A]" where unknown.
 */
export function parseNvidiaSmiCsv(output: string): Accelerator[] {
  return output
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '')
    .map((line) => {
      // GPU names never contain commas; the last two columns are numbers or [N/A].
      const [name = '', computeCapability, memoryMiB] = line.split(',').map((c) => c.trim());
      const gpu: Accelerator = { kind: 'cuda', name };
      if (computeCapability && /^\d+\.\d+$/.test(computeCapability)) {
        gpu.computeCapability = computeCapability;
      }
      const mib = Number(memoryMiB);
      if (memoryMiB && Number.isInteger(mib) && mib > 0) gpu.memoryBytes = mib * MiB;
      return gpu;
    });
}

/**
 * CUDA GPUs as the NVIDIA driver lists them. No nvidia-smi means no NVIDIA driver, which is the
 * normal case on most edge boards, so that is an empty list; a driver that fails is logged.
 */
export async function queryNvidiaSmi(logger?: Logger): Promise<Accelerator[]> {
  try {
    const { stdout } = await promisify(execFile)('nvidia-smi', QUERY, { timeout: TIMEOUT_MS });
    return parseNvidiaSmiCsv(stdout);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger?.warn({ err }, 'nvidia-smi failed; reporting no CUDA GPU');
    }
    return [];
  }
}
