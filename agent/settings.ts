import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EdgeforgeError } from '../common/errors.js';
import { DEFAULT_METRICS_ADDRESS, DEFAULT_SERVING_ADDRESS, type EdgeAgentConfig } from './agent.js';
import { parseHostPort } from '../common/metrics-server.js';

/** One setting, given as a command-line flag or an environment variable (the flag wins). */
export interface AgentSettingSpec {
  key: keyof AgentFlags;
  flag: string;
  env: string;
  /** Shown in --help, e.g. "host:port". */
  value: string;
  description: string;
}

/** Flag values by camel-cased name, as commander and node:util parseArgs hand them over. */
export interface AgentFlags {
  controlPlane?: string;
  enrollmentTokenFile?: string;
  /** Refused: a secret on the command line is in every `ps` listing. */
  enrollmentToken?: string;
  deviceName?: string;
  dataDir?: string;
  profile?: string;
  metrics?: string;
  serve?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export const AGENT_SETTINGS: readonly AgentSettingSpec[] = [
  {
    key: 'controlPlane',
    flag: 'control-plane',
    env: 'EDGEFORGE_CONTROL_PLANE',
    value: 'host:port',
    description: "the control plane's gRPC address (required)",
  },
  {
    key: 'enrollmentTokenFile',
    flag: 'enrollment-token-file',
    env: 'EDGEFORGE_ENROLLMENT_TOKEN_FILE',
    value: 'file',
    description:
      'file holding the fleet enrollment token (required, or the token itself in ' +
      'EDGEFORGE_ENROLLMENT_TOKEN); never on the command line, where `ps` shows it',
  },
  {
    key: 'deviceName',
    flag: 'device-name',
    env: 'EDGEFORGE_AGENT_DEVICE_NAME',
    value: 'name',
    description:
      'stable device name; enrolling again under it keeps the device id (default: hostname)',
  },
  {
    key: 'dataDir',
    flag: 'data-dir',
    env: 'EDGEFORGE_AGENT_DATA_DIR',
    value: 'dir',
    description: 'where the device identity and credential are kept (default: ~/.edgeforge/agent)',
  },
  {
    key: 'profile',
    flag: 'profile',
    env: 'EDGEFORGE_AGENT_PROFILE',
    value: 'file',
    description: 'hardware profile override JSON, for simulated devices',
  },
  {
    key: 'metrics',
    flag: 'metrics',
    env: 'EDGEFORGE_AGENT_METRICS',
    value: 'host:port',
    description: `where to serve /metrics; port 0 picks a free one (default: ${DEFAULT_METRICS_ADDRESS})`,
  },
  {
    key: 'serve',
    flag: 'serve',
    env: 'EDGEFORGE_AGENT_SERVE',
    value: 'host:port',
    description:
      `where to serve the local inference endpoint (POST /v1/infer); port 0 picks a free one ` +
      `(default: ${DEFAULT_SERVING_ADDRESS})`,
  },
  {
    key: 'tlsCa',
    flag: 'tls-ca',
    env: 'EDGEFORGE_AGENT_TLS_CA',
    value: 'file',
    description: "CA bundle (PEM) for the control plane's certificate; enables TLS",
  },
  {
    key: 'tlsCert',
    flag: 'tls-cert',
    env: 'EDGEFORGE_AGENT_TLS_CERT',
    value: 'file',
    description: 'client certificate (PEM) for mTLS; needs --tls-key',
  },
  {
    key: 'tlsKey',
    flag: 'tls-key',
    env: 'EDGEFORGE_AGENT_TLS_KEY',
    value: 'file',
    description: 'private key (PEM) of the client certificate',
  },
];

/** What flags and environment can set: everything in EdgeAgentOptions but code-only knobs. */
export type AgentSettings = Pick<
  EdgeAgentConfig,
  | 'controlPlane'
  | 'enrollmentToken'
  | 'deviceName'
  | 'dataDir'
  | 'profileOverrideFile'
  | 'metricsAddress'
  | 'servingAddress'
  | 'tls'
>;

/** The token from its file, else EDGEFORGE_ENROLLMENT_TOKEN; a problem when neither has one. */
function readEnrollmentToken(
  env: NodeJS.ProcessEnv,
  flags: AgentFlags,
  value: (key: keyof AgentFlags) => string | undefined,
  problems: string[],
): string {
  const tokenFlag = '--enrollment-token-file / EDGEFORGE_ENROLLMENT_TOKEN_FILE';
  if (flags.enrollmentToken !== undefined) {
    problems.push(
      '--enrollment-token puts the fleet secret in the process list (ps) and the shell history: ' +
        `give ${tokenFlag}, or EDGEFORGE_ENROLLMENT_TOKEN in the environment`,
    );
    return '';
  }
  const file = value('enrollmentTokenFile');
  if (file !== undefined) {
    try {
      const token = readFileSync(file, 'utf8').trim();
      if (token === '') problems.push(`${tokenFlag}: ${file} is empty`);
      return token;
    } catch (err) {
      problems.push(`${tokenFlag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
      return '';
    }
  }
  const token = env.EDGEFORGE_ENROLLMENT_TOKEN?.trim() ?? '';
  if (token === '') problems.push(`${tokenFlag} (or EDGEFORGE_ENROLLMENT_TOKEN) is required`);
  return token;
}

/**
 * Reads the agent's settings from flags, then the environment, then defaults; every problem is
 * reported at once, each naming its flag and variable.
 */
export function loadAgentSettings(env: NodeJS.ProcessEnv, flags: AgentFlags = {}): AgentSettings {
  const problems: string[] = [];
  const value = (key: keyof AgentFlags): string | undefined => {
    const spec = AGENT_SETTINGS.find((s) => s.key === key);
    const raw = flags[key] ?? (spec ? env[spec.env] : undefined);
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };
  const name = (key: keyof AgentFlags) => {
    const spec = AGENT_SETTINGS.find((s) => s.key === key);
    return spec ? `--${spec.flag} / ${spec.env}` : key;
  };
  const hostPort = (key: keyof AgentFlags, fallback?: string): string => {
    const address = value(key) ?? fallback;
    if (address === undefined) {
      problems.push(`${name(key)} is required (host:port)`);
      return '';
    }
    try {
      parseHostPort(address);
    } catch (err) {
      problems.push(`${name(key)}: ${(err as Error).message}`);
    }
    return address;
  };

  const controlPlane = hostPort('controlPlane');
  const metricsAddress = hostPort('metrics', DEFAULT_METRICS_ADDRESS);
  const servingAddress = hostPort('serve', DEFAULT_SERVING_ADDRESS);
  const enrollmentToken = readEnrollmentToken(env, flags, value, problems);
  const [caFile, certFile, keyFile] = [value('tlsCa'), value('tlsCert'), value('tlsKey')];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    problems.push(`${name('tlsCert')} and ${name('tlsKey')} go together: give both or neither`);
  }
  if (problems.length > 0) {
    throw new EdgeforgeError(`invalid agent settings:\n  ${problems.join('\n  ')}`);
  }
  const tlsGiven = [caFile, certFile, keyFile].some((f) => f !== undefined);
  return {
    controlPlane,
    enrollmentToken,
    dataDir: value('dataDir') ?? join(homedir(), '.edgeforge', 'agent'),
    metricsAddress,
    servingAddress,
    tls: tlsGiven ? { caFile, certFile, keyFile } : undefined,
    profileOverrideFile: value('profile'),
    deviceName: value('deviceName'),
  };
}
