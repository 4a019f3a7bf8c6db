import {
  Accelerator_Kind,
  type HardwareProfile as ProtoHardwareProfile,
} from '../proto/gen/edgeforge/v1/hardware.pb.js';
import {
  validateHardwareProfile,
  type AcceleratorKind,
  type HardwareProfile,
} from './hardware/index.js';

/** gRPC metadata key of the credential: `authorization: Bearer <credential>`. */
export const AUTHORIZATION_METADATA_KEY = 'authorization';

export function bearer(credential: string): string {
  return `Bearer ${credential}`;
}

/**
 * In the details of the PERMISSION_DENIED the control plane answers a revoked device with (every
 * FleetService call, and Enroll under its name): agents stop re-enrolling on seeing it.
 */
export const REVOKED_PHRASE = 'was revoked by an operator';

/** Largest request the control plane accepts. Profiles and reports are a few KiB. */
export const MAX_REQUEST_BYTES = 256 * 1024;
/** Largest response: a page of 1000 devices with their profiles. */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

const KIND_TO_PROTO: Record<AcceleratorKind, Accelerator_Kind> = {
  cuda: Accelerator_Kind.KIND_CUDA,
  npu: Accelerator_Kind.KIND_NPU,
  other: Accelerator_Kind.KIND_OTHER,
};

export function profileToProto(profile: HardwareProfile): ProtoHardwareProfile {
  return {
    arch: profile.arch,
    cpuVendor: profile.cpuVendor,
    cpuModel: profile.cpuModel,
    cores: profile.cores,
    threads: profile.threads,
    isaFeatures: profile.isaFeatures,
    memoryBytes: profile.memoryBytes,
    accelerators: profile.accelerators.map((a) => ({
      kind: KIND_TO_PROTO[a.kind],
      name: a.name,
      computeCapability: a.computeCapability ?? '',
      memoryBytes: a.memoryBytes ?? 0,
    })),
    onnxRuntime: profile.onnxRuntime,
    os: profile.os,
    deviceModel: profile.deviceModel ?? '',
  };
}

/**
 * The profile an agent sent, validated. Proto3 has no "absent" for scalars, so empty strings and
 * zeros become missing fields, which the validator then names.
 */
export function profileFromProto(proto: ProtoHardwareProfile): HardwareProfile {
  const kindOf = (kind: Accelerator_Kind): string | undefined =>
    (Object.keys(KIND_TO_PROTO) as AcceleratorKind[]).find((k) => KIND_TO_PROTO[k] === kind);
  return validateHardwareProfile({
    arch: proto.arch,
    cpuVendor: proto.cpuVendor,
    cpuModel: proto.cpuModel,
    cores: proto.cores,
    threads: proto.threads,
    isaFeatures: proto.isaFeatures,
    memoryBytes: proto.memoryBytes,
    accelerators: proto.accelerators.map((a) => ({
      kind: kindOf(a.kind),
      name: a.name,
      computeCapability: a.computeCapability || undefined,
      memoryBytes: a.memoryBytes || undefined,
    })),
    onnxRuntime: proto.onnxRuntime,
    os: proto.os,
    deviceModel: proto.deviceModel || undefined,
  });
}
