import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EdgeforgeError } from '../common/errors.js';
import { NATS_CA_FILE_ENV } from '../common/nats.js';
import { DEFAULT_METRICS_ADDRESS, DEFAULT_SERVING_ADDRESS, type EdgeAgentConfig } from './agent.js';
import { parseHostPort } from '../common/metrics-server.js';
import { plaintextRefusal } from './fleet/fleet-client.js';

/** One setting, given as a command-line flag or an environment variable (the flag wins). */
export interface AgentSettingSpec {
  key: keyof AgentFlags;
  flag: string;
  env: string;
  /** Shown in --help, e.g. "host:port"; absent for a switch (`--tls`, or the variable =true). */
  value?: string;
  description: string;
}

/** A switch's value: true from commander; the text of its variable (or `--flag true`) otherwise. */
type Switch = boolean | string;

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
  tls?: Switch;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecure?: Switch;
  natsCaFile?: string;
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
    key: 'tls',
    flag: 'tls',
    env: 'EDGEFORGE_AGENT_TLS',
    description:
      "TLS to the control plane, its certificate verified against the system's trust roots " +
      '(or --tls-ca); needed for a control plane that is not on loopback, unless --insecure',
  },
  {
    key: 'tlsCa',
    flag: 'tls-ca',
    env: 'EDGEFORGE_AGENT_TLS_CA',
    value: 'file',
    description:
      "CA bundle (PEM) for the control plane's certificate, instead of the system's; enables TLS",
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
  {
    key: 'insecure',
    flag: 'insecure',
    env: 'EDGEFORGE_AGENT_INSECURE',
    description:
      'talk plaintext to a control plane that is not on loopback: the enrollment token and the ' +
      'device credential cross the network readable (a trusted network only)',
  },
  {
    key: 'natsCaFile',
    flag: 'nats-ca-file',
    env: NATS_CA_FILE_ENV,
    value: 'file',
    description:
      "CA (PEM) for the NATS server's certificate, trusted besides the system's roots; " +
      'requires TLS (a tls:// URL from the control plane uses TLS with the system roots without it)',
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
  | 'insecure'
  | 'natsCaFile'
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

function isHostPort(address: string): boolean {
  try {
    parseHostPort(address);
    return true;
  } catch {
    return false;
  }
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
    return typeof raw !== 'string' || raw.trim() === '' ? undefined : raw.trim();
  };
  const name = (key: keyof AgentFlags) => {
    const spec = AGENT_SETTINGS.find((s) => s.key === key);
    return spec ? `--${spec.flag} / ${spec.env}` : key;
  };
  const on = (key: 'tls' | 'insecure'): boolean => {
    const raw = flags[key] ?? value(key);
    if (raw === undefined || typeof raw === 'boolean') return raw ?? false;
    if (/^(1|true|yes|on)$/i.test(raw.trim())) return true;
    if (/^(0|false|no|off)$/i.test(raw.trim())) return false;
    problems.push(`${name(key)}: expected true or false, not ${JSON.stringify(raw)}`);
    return false;
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
  const natsCaFile = value('natsCaFile');
  if (natsCaFile !== undefined) {
    try {
      readFileSync(natsCaFile);
    } catch (err) {
      problems.push(
        `${name('natsCaFile')}: cannot read ${natsCaFile} (${(err as NodeJS.ErrnoException).code})`,
      );
    }
  }
  const tls = on('tls') || [caFile, certFile, keyFile].some((f) => f !== undefined);
  const insecure = on('insecure');
  if (tls && insecure) {
    problems.push(
      `${name('insecure')} and TLS (${name('tls')}, --tls-ca, --tls-cert) contradict each other: ` +
        'choose one',
    );
  } else if (isHostPort(controlPlane)) {
    const refusal = plaintextRefusal(controlPlane, { tls, insecure });
    if (refusal) problems.push(`${name('controlPlane')}: ${refusal}`);
  }
  if (problems.length > 0) {
    throw new EdgeforgeError(`invalid agent settings:\n  ${problems.join('\n  ')}`);
  }
  return {
    controlPlane,
    enrollmentToken,
    dataDir: value('dataDir') ?? join(homedir(), '.edgeforge', 'agent'),
    metricsAddress,
    servingAddress,
    tls: tls ? { caFile, certFile, keyFile } : undefined,
    ...(insecure ? { insecure } : {}),
    natsCaFile,
    profileOverrideFile: value('profile'),
    deviceName: value('deviceName'),
  };
}
