import { describe, expect, it } from 'vitest';
import { jetsonGpu } from './jetson.js';

describe('jetsonGpu', () => {
  it.each([
    ['NVIDIA Jetson AGX Xavier Developer Kit', 'NVIDIA Jetson AGX Xavier', '7.2'],
    ['NVIDIA Jetson Xavier NX Developer Kit', 'NVIDIA Jetson Xavier NX', '7.2'],
    ['NVIDIA Jetson AGX Orin Developer Kit', 'NVIDIA Jetson AGX Orin', '8.7'],
    // The Orin Nano is an Ampere part, not the Maxwell Jetson Nano.
    ['NVIDIA Jetson Orin Nano Developer Kit', 'NVIDIA Jetson Orin Nano', '8.7'],
    ['NVIDIA Jetson Nano Developer Kit', 'NVIDIA Jetson Nano', '5.3'],
    ['NVIDIA Jetson TX2', 'NVIDIA Jetson TX2', '6.2'],
  ])('%s has a CUDA GPU with compute capability %s', (model, name, computeCapability) => {
    expect(jetsonGpu(model)).toEqual({ kind: 'cuda', name, computeCapability });
  });

  it('names an unknown Jetson without guessing its compute capability', () => {
    expect(jetsonGpu('NVIDIA Jetson Something New')).toEqual({
      kind: 'cuda',
      name: 'NVIDIA Jetson Something New',
    });
  });

  it('finds no GPU on other boards', () => {
    expect(jetsonGpu('Raspberry Pi 5 Model B Rev 1.0')).toBeUndefined();
  });
});
