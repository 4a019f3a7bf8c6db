import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs, one line per event. `component` names the process part; callers add ids
 * (deviceId, rolloutId, variant) with `logger.child({...})`.
 */
export function createLogger(
  component: string,
  level = process.env.EDGEFORGE_LOG_LEVEL ?? 'info',
): Logger {
  return pino({ level, base: { component } });
}
