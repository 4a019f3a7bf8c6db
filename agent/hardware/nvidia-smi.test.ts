import { describe, expect, it } from 'vitest';
import { parseNvidiaSmiCsv } from './nvidia-smi.js';

describe('parseNvidiaSmiCsv', () => {
  it('reads one CUDA accelerator per line, memory from MiB to bytes', () => {
    const output = 'NVIDIA H100 80GB HBM3, 9.0, 81559\nNVIDIA GeForce RTX 3060, 8.6, 12288\n';
    expect(parseNvidiaSmiCsv(output)).toEqual([
      {
        kind: 'cuda',
        name: 'NVIDIA H100 80GB HBM3',
        computeCapability: '9.0',
        memoryBytes: 81559 * 1024 ** 2,
      },
      {
        kind: 'cuda',
        name: 'NVIDIA GeForce RTX 3060',
        computeCapability: '8.6',
        memoryBytes: 12288 * 1024 ** 2,
      },
    ]);
  });

  it('leaves out what the driver reports as [N/A]', () => {
    expect(parseNvidiaSmiCsv('Orin (nvgpu), 8.7, [N/A]\r\n')).toEqual([
      { kind: 'cuda', name: 'Orin (nvgpu)', computeCapability: '8.7' },
    ]);
  });

  it('returns nothing for empty output', () => {
    expect(parseNvidiaSmiCsv('\n')).toEqual([]);
  });
});
