/** The edge agent's public API; nothing outside agent/ imports its other files. */
export {
  DEFAULT_METRICS_ADDRESS,
  DEFAULT_SERVING_ADDRESS,
  defaultAgentOptions,
  EdgeAgent,
  type AgentState,
  type AgentStatus,
  type EdgeAgentConfig,
  type EdgeAgentOptions,
} from './agent.js';
export { readyLine, runAgent } from './run-agent.js';
export {
  AGENT_SETTINGS,
  loadAgentSettings,
  type AgentFlags,
  type AgentSettings,
  type AgentSettingSpec,
} from './settings.js';
export { detectHardwareProfile, type DetectHardwareOptions } from './hardware/detect.js';
export { ProfileOverrideError } from './hardware/profile-override.js';
export type { SimulatedFaults } from './simulation/simulated-faults.js';
export { IdentityFileError, type DeviceIdentity } from './identity/identity-store.js';
export { FleetCallError, type TlsFiles } from './fleet/fleet-client.js';
export type { LastError } from './fleet/device-session.js';
export type { ModelServiceStatus } from './model-service.js';
export { AGENT_VERSION } from './version.js';
