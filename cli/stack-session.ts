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

/** What runs on Ctrl-C / SIGTERM before the stack stops, newest first (e.g. agents on it). */
const shutdownHooks: (() => Promise<void>)[] = [];

/**
 * Registers `hook` to run on Ctrl-C / SIGTERM before the stack stops: processes that use the
 * stack stop while it still answers, and while this process still reads their output.
 */
export function onShutdown(hook: () => Promise<void>): void {
  shutdownHooks.unshift(hook);
}

let signalsInstalled = false;

/**
 * On Ctrl-C / SIGTERM: the shutdown hooks, then `stop` (the stack, when this process started
 * one), then exit 130. Another Ctrl-C more than two seconds later exits at once.
 */
export function stopOnSignals(stop: () => Promise<void> = async () => {}): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  let stoppingSince: number | null = null;
  const shutdown = (signal: string) => {
    if (stoppingSince !== null) {
      // npm and tsx pass a Ctrl-C on to us, which the terminal also sent: the same keypress
      // arrives twice. Only a later one means "now".
      if (Date.now() - stoppingSince > 2_000) process.exit(130);
      return;
    }
    stoppingSince = Date.now();
    process.stderr.write(`[stack] ${signal}: stopping\n`);
    (async () => {
      for (const hook of shutdownHooks) await hook().catch(() => {});
      await stop();
    })().then(
      () => process.exit(130),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

/**
 * Starts the embedded stack with progress on stderr, and stops it on Ctrl-C / SIGTERM before
 * exiting (after the shutdown hooks). Returns the running stack.
 */
export async function startStackForCli(options: {
  ui: boolean;
  prometheus?: boolean;
}): Promise<EmbeddedStack> {
  const say = (message: string) => process.stderr.write(`[stack] ${message}\n`);
  let stop = async () => {};
  const stack = await startEmbeddedStack({
    toolchain: loadToolchain(),
    dataDir: dataDir(),
    ui: options.ui,
    prometheus: options.prometheus,
    onProgress: say,
    // A part that keeps dying: the stack cannot serve; stopped loudly rather than left half up.
    onPartGaveUp: (part, reason) => {
      process.stderr.write(`[stack] ${part} keeps dying; stopping the stack. ${reason}\n`);
      void stop().finally(() => process.exit(1));
    },
  });
  stop = () => stack.stop();
  stopOnSignals(() => stack.stop());
  return stack;
}
