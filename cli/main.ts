import { Command, CommanderError } from 'commander';
import { registerAgent } from './commands/agent.js';
import { registerDemo } from './commands/demo.js';
import { registerFleet } from './commands/fleet.js';
import { registerKeys } from './commands/keys.js';
import { registerRollout } from './commands/rollout.js';
import { registerUp } from './commands/up.js';
import { CliError, EXIT } from './exit-codes.js';

const program = new Command()
  .name('edgeforge')
  .description('Hardware-aware model compression and rollout for edge fleets')
  .showHelpAfterError()
  // Subcommands inherit this: a usage error becomes a CommanderError instead of exit(1).
  .exitOverride();
registerUp(program);
registerDemo(program);
registerRollout(program);
registerFleet(program);
registerKeys(program);
registerAgent(program);

program.parseAsync().then(
  // Lingering handles (a gRPC channel in its close timeout) must not keep a finished command up.
  () => process.exit(process.exitCode ?? EXIT.ok),
  (err: unknown) => {
    if (err instanceof CommanderError) {
      // Help and --version end with 0; anything commander refused is a usage error.
      const shown = ['commander.helpDisplayed', 'commander.version'].includes(err.code);
      process.exit(shown || err.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    if (err instanceof CliError) {
      process.stderr.write(`edgeforge: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    process.stderr.write(`edgeforge: ${message}\n`);
    process.exit(EXIT.failed);
  },
);
