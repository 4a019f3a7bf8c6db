import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Fields that hold secrets, wherever they appear in a log line (top level or one level down). */
const SECRET_FIELDS = [
  'credential',
  'deviceCredential',
  'renewedCredential',
  'enrollmentToken',
  'adminToken',
  'token',
  'auth_token',
  'password',
  'pass',
  'seed',
  'issuerSeed',
  'privateKey',
  'privateKeyPem',
  'authorization',
];

export const REDACTED = '[redacted]';

/**
 * Structured JSON logs, one line per event. `component` names the process part; callers add ids
 * (deviceId, rolloutId, variant) with `logger.child({...})`. Secret fields are masked, so a
 * request or identity logged whole never writes a credential into a log file.
 */
export function createLogger(
  component: string,
  level = process.env.EDGEFORGE_LOG_LEVEL ?? 'info',
  destination?: DestinationStream,
): Logger {
  const options = {
    level,
    base: { component },
    redact: {
      paths: SECRET_FIELDS.flatMap((field) => [field, `*.${field}`]),
      censor: REDACTED,
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
