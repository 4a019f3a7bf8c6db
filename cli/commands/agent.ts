import type { Command } from 'commander';
import { AGENT_SETTINGS, loadAgentSettings, runAgent, type AgentFlags } from '../../agent/index.js';

export function registerAgent(program: Command): void {
  const command = program
    .command('agent')
    .description(
      'run the edge agent: detect the hardware, enroll with the control plane, heartbeat and ' +
        'serve /metrics until Ctrl-C (each flag falls back to the environment variable shown)',
    );
  for (const s of AGENT_SETTINGS) {
    command.option(`--${s.flag} <${s.value}>`, `${s.description} [${s.env}]`);
  }
  command.action(async (flags: AgentFlags) => {
    await runAgent(loadAgentSettings(process.env, flags));
  });
}
