export {
  startControlPlane,
  defaultControlPlaneOptions,
  type ControlPlaneOptions,
  type RunningControlPlane,
  type TlsFiles,
} from './control-plane.js';
export { deviceIdFor } from './grpc/fleet-service.js';
export { loadOrCreateToken } from '../../common/secrets.js';
export type { DeviceRecord, Connectivity } from './registry/device-record.js';
