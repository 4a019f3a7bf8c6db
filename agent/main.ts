/**
 * The edge agent process: `npx tsx agent/main.ts [--control-plane host:port] ...`, or the same
 * settings from EDGEFORGE_* variables (see agent/settings.ts, `edgeforge agent --help`).
 */
import { parseArgs } from 'node:util';
import { runAgent } from './run-agent.js';
import { AGENT_SETTINGS, loadAgentSettings, type AgentFlags } from './settings.js';

function readFlags(): AgentFlags {
  const { values } = parseArgs({
    options: Object.fromEntries(AGENT_SETTINGS.map((s) => [s.flag, { type: 'string' as const }])),
    strict: true,
  });
  return Object.fromEntries(AGENT_SETTINGS.map((s) => [s.key, values[s.flag]]));
}

try {
  await runAgent(loadAgentSettings(process.env, readFlags()));
} catch (err) {
  process.stderr.write(`edgeforge agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
