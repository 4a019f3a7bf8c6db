import type { Accelerator } from '../../common/hardware/index.js';

// Jetsons' GPUs are integrated: older JetPacks ship no nvidia-smi, so the board name from the
// device tree is how the agent learns about the GPU. Compute capabilities from NVIDIA's CUDA GPU
// list; the more specific names come first ("Orin Nano" is not the Maxwell "Nano").
const JETSON_COMPUTE_CAPABILITY: [RegExp, string][] = [
  [/\borin\b/i, '8.7'],
  [/\bxavier\b/i, '7.2'],
  [/\btx2\b/i, '6.2'],
  [/\b(tx1|nano)\b/i, '5.3'],
];

/**
 * The integrated GPU of a Jetson, from its device-tree model, e.g. "NVIDIA Jetson AGX Xavier
 * Developer Kit"; undefined for any other board.
 */
export function jetsonGpu(deviceModel: string): Accelerator | undefined {
  if (!/\bjetson\b/i.test(deviceModel)) return undefined;
  const computeCapability = JETSON_COMPUTE_CAPABILITY.find(([re]) => re.test(deviceModel))?.[1];
  const name = deviceModel.replace(/\s+Developer Kit$/i, '');
  return computeCapability ? { kind: 'cuda', name, computeCapability } : { kind: 'cuda', name };
}
