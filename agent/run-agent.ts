import { createLogger } from '../common/logger.js';
import { EdgeAgent } from './agent.js';
import type { AgentSettings } from './settings.js';

/** The line launchers wait for on stdout; the rest of stdout is JSON logs. */
export function readyLine(agent: EdgeAgent): string {
  return (
    `agent ready device_id=${agent.deviceId} hardware_class=${agent.hardwareClass} ` +
    `metrics_url=${agent.metricsUrl} inference_url=${agent.inferenceUrl}\n`
  );
}

/**
 * Runs the agent as a process: starts it, prints the ready line once it has an identity, and
 * stops it cleanly on SIGINT or SIGTERM (a second signal exits at once). Resolves once stopped;
 * rejects when the agent cannot start.
 */
export async function runAgent(settings: AgentSettings): Promise<void> {
  const logger = createLogger('agent');
  const agent = new EdgeAgent({ ...settings, logger });
  let signalled: (signal: NodeJS.Signals) => void = () => {};
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting without a clean stop');
      process.exit(1);
    }
    signalled(signal);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    const started = agent.start().then(() => undefined);
    const signal = await Promise.race([started, stopRequested]);
    if (signal === undefined) {
      process.stdout.write(readyLine(agent));
      logger.info({ signal: await stopRequested }, 'stopping');
    } else {
      logger.info({ signal }, 'stopping before the agent started');
    }
  } finally {
    await agent.stop();
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
  logger.info('agent stopped');
}
