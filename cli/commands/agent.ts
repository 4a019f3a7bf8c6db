import { Option, type Command } from 'commander';
import {
  AGENT_SETTINGS,
  loadAgentSettings,
  runAgent,
  type AgentFlags,
  type AgentSettings,
} from '../../agent/index.js';
import { EXIT_CODES_HELP, UsageError, withExitCodes } from '../exit-codes.js';

export function registerAgent(program: Command): void {
  const command = program
    .command('agent')
    .description(
      'run the edge agent: detect the hardware, enroll with the control plane, heartbeat and ' +
        'serve /metrics until Ctrl-C (each flag falls back to the environment variable shown)',
    );
  for (const s of AGENT_SETTINGS) {
    // A switch takes no value on the command line; its variable is true or false.
    const flag = s.value === undefined ? `--${s.flag}` : `--${s.flag} <${s.value}>`;
    command.option(flag, `${s.description} [${s.env}]`);
  }
  // Parsed only to refuse it with the way out (agent/settings.ts), never listed.
  command.addOption(new Option('--enrollment-token <token>').hideHelp());
  command.addHelpText('after', `\n${EXIT_CODES_HELP}`);
  command.action(
    withExitCodes(async (flags: AgentFlags) => {
      let settings: AgentSettings;
      try {
        settings = loadAgentSettings(process.env, flags);
      } catch (err) {
        // Every missing or malformed flag, named: a usage error.
        throw new UsageError((err as Error).message, { cause: err });
      }
      await runAgent(settings);
    }),
  );
}
