/**
 * The edge agent process: `npx tsx agent/main.ts [--control-plane host:port] ...`, or the same
 * settings from EDGEFORGE_* variables (see agent/settings.ts, `edgeforge agent --help`).
 */
import { parseArgs } from 'node:util';
import { runAgent } from './run-agent.js';
import { AGENT_SETTINGS, loadAgentSettings, type AgentFlags } from './settings.js';

function readFlags(): AgentFlags {
  const flags = [...AGENT_SETTINGS.map((s) => [s.flag, s.key] as const)];
  // Parsed only to refuse it with the way out (agent/settings.ts).
  flags.push(['enrollment-token', 'enrollmentToken']);
  // A setting without a value (--tls, --insecure) is a switch.
  const switches = new Set(AGENT_SETTINGS.filter((s) => s.value === undefined).map((s) => s.flag));
  const { values } = parseArgs({
    options: Object.fromEntries(
      flags.map(([flag]) => [
        flag,
        { type: switches.has(flag) ? ('boolean' as const) : ('string' as const) },
      ]),
    ),
    strict: true,
  });
  return Object.fromEntries(flags.map(([flag, key]) => [key, values[flag]]));
}

try {
  await runAgent(loadAgentSettings(process.env, readFlags()));
} catch (err) {
  process.stderr.write(`edgeforge agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
