import type { Command } from 'commander';
import { redactUrl } from '../../common/nats.js';
import { EXIT_CODES_HELP, withExitCodes } from '../exit-codes.js';
import { startStackForCli } from '../stack-session.js';

export function registerUp(program: Command): void {
  program
    .command('up')
    .description(
      'run the embedded stack: nats-server, Temporal dev server, gpu worker, orchestrator worker',
    )
    .option('--no-ui', 'do not serve the Temporal Web UI')
    .option(
      '--prometheus',
      "also run Prometheus with deploy/prometheus's config and rules, scraping the stack",
    )
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(
      withExitCodes(async (options: { ui: boolean; prometheus?: boolean }) => {
        const stack = await startStackForCli({
          ui: options.ui,
          prometheus: Boolean(options.prometheus),
        });
        const e = stack.endpoints;
        process.stdout.write(
          [
            'edgeforge stack is up (Ctrl-C stops it)',
            `  NATS              ${redactUrl(e.natsUrl)}`,
            `  Temporal          ${e.temporalAddress}`,
            ...(e.temporalUiUrl ? [`  Temporal UI       ${e.temporalUiUrl}`] : []),
            `  control plane     ${e.controlPlaneAddress} (metrics ${e.controlPlaneMetricsUrl})`,
            `  orchestrator      metrics ${e.orchestratorMetricsUrl}`,
            `  gpu worker        metrics ${e.gpuWorkerMetricsUrl}`,
            ...(e.prometheusUrl
              ? [`  Prometheus        ${e.prometheusUrl} (agents: ${e.prometheusAgentTargetsFile})`]
              : []),
            `  enrollment token  ${e.enrollmentTokenFile}`,
            `  admin token       ${e.adminTokenFile}`,
            `  logs              ${e.logDir}`,
            '',
            'Point other shells at it with:',
            // The URL carries the password: the hint reads it from its 0600 file, never prints it.
            `  export EDGEFORGE_NATS_URL="$(cat ${e.natsUrlFile})" EDGEFORGE_TEMPORAL_ADDRESS=${e.temporalAddress}`,
            `  export EDGEFORGE_CONTROL_PLANE=${e.controlPlaneAddress}`,
            'Enroll this machine as a device with:',
            `  edgeforge agent --control-plane ${e.controlPlaneAddress} --enrollment-token-file ${e.enrollmentTokenFile}`,
            '',
          ].join('\n'),
        );
        await new Promise(() => {}); // Runs until a signal stops the stack.
      }),
    );
}
