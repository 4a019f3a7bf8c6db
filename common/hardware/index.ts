export {
  INFERENCE_ISA_FEATURES,
  HardwareProfileError,
  validateHardwareProfile,
  type Accelerator,
  type AcceleratorKind,
  type Arch,
  type HardwareProfile,
} from './profile.js';
export { CpuinfoParseError, parseCpuinfo, type CpuinfoSummary } from './cpuinfo.js';
export {
  deriveHardwareClass,
  describeHardwareClass,
  memoryTier,
  profileFromCpuinfo,
  type AcceleratorClass,
  type Fp16Path,
  type HardwareClass,
  type Int8Path,
  type MemoryTier,
  type ProfileExtras,
} from './hardware-class.js';
