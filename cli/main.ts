import { Command } from 'commander';
import { registerAgent } from './commands/agent.js';
import { registerDemo } from './commands/demo.js';
import { registerFleet } from './commands/fleet.js';
import { registerUp } from './commands/up.js';

const program = new Command()
  .name('edgeforge')
  .description('Hardware-aware model compression and rollout for edge fleets')
  .showHelpAfterError();
registerUp(program);
registerDemo(program);
registerFleet(program);
registerAgent(program);

program.parseAsync().catch((err: unknown) => {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(`edgeforge: ${message}\n`);
  process.exit(1);
});
