/**
 * The edge agent process: `edgeforge-agent [--control-plane host:port] ...` from the packed agent
 * (`npm run agent:pack`), `npx tsx agent/main.ts ...` from this repository, or the same settings
 * from EDGEFORGE_* variables (agent/settings.ts). `edgeforge agent` runs the same code.
 */
import { parseArgs } from 'node:util';
import { runAgent } from './run-agent.js';
import { AGENT_SETTINGS, loadAgentSettings, type AgentFlags } from './settings.js';
import { AGENT_VERSION } from './version.js';

/** Exit status of a bad command line or bad settings (as the `edgeforge` CLI's usage errors). */
const USAGE_ERROR = 2;

function helpText(): string {
  const rows = AGENT_SETTINGS.map((s) => [
    `--${s.flag}${s.value === undefined ? '' : ` <${s.value}>`}`,
    `${s.description} [${s.env}]`,
  ]);
  const width = Math.max(...rows.map(([flag]) => flag!.length)) + 2;
  return [
    `edgeforge-agent ${AGENT_VERSION}: detects this device's hardware, enrolls with the control`,
    'plane, receives signed models, benchmarks and serves them, until SIGINT or SIGTERM.',
    'Each flag falls back to the environment variable shown.',
    '',
    ...rows.map(([flag, text]) => `  ${flag!.padEnd(width)}${text}`),
    `  ${'--version'.padEnd(width)}print the version`,
    '',
  ].join('\n');
}

function readFlags(): AgentFlags | 'help' | 'version' {
  const flags = [...AGENT_SETTINGS.map((s) => [s.flag, s.key] as const)];
  // Parsed only to refuse it with the way out (agent/settings.ts).
  flags.push(['enrollment-token', 'enrollmentToken']);
  // A setting without a value (--tls, --insecure) is a switch.
  const switches = new Set(AGENT_SETTINGS.filter((s) => s.value === undefined).map((s) => s.flag));
  const { values } = parseArgs({
    options: {
      ...Object.fromEntries(
        flags.map(([flag]) => [
          flag,
          { type: switches.has(flag) ? ('boolean' as const) : ('string' as const) },
        ]),
      ),
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  if (values.version) return 'version';
  const given = values as Record<string, string | boolean | undefined>;
  return Object.fromEntries(flags.map(([flag, key]) => [key, given[flag]]));
}

let flags: ReturnType<typeof readFlags>;
let settings: ReturnType<typeof loadAgentSettings> | undefined;
try {
  flags = readFlags();
  if (flags === 'help') process.stdout.write(helpText());
  else if (flags === 'version') process.stdout.write(`${AGENT_VERSION}\n`);
  else settings = loadAgentSettings(process.env, flags);
} catch (err) {
  process.stderr.write(
    `edgeforge-agent: ${err instanceof Error ? err.message : String(err)}\n(see --help)\n`,
  );
  process.exitCode = USAGE_ERROR;
}
if (settings) {
  try {
    await runAgent(settings);
  } catch (err) {
    process.stderr.write(`edgeforge-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
