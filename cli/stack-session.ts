import { join } from 'node:path';
import {
  loadToolchain,
  REPO_ROOT,
  startEmbeddedStack,
  type EmbeddedStack,
} from '../services/stack/index.js';

/** Where `edgeforge up` keeps Temporal's SQLite file, JetStream storage and logs. */
export function dataDir(): string {
  return process.env.EDGEFORGE_DATA_DIR ?? join(REPO_ROOT, '.edgeforge', 'stack');
}

/**
 * Starts the embedded stack with progress on stderr, and stops it on Ctrl-C / SIGTERM before
 * exiting. Returns the running stack.
 */
export async function startStackForCli(options: { ui: boolean }): Promise<EmbeddedStack> {
  const say = (message: string) => process.stderr.write(`[stack] ${message}\n`);
  const stack = await startEmbeddedStack({
    toolchain: loadToolchain(),
    dataDir: dataDir(),
    ui: options.ui,
    onProgress: say,
  });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping the stack`);
    stack.stop().then(
      () => process.exit(130),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  return stack;
}
