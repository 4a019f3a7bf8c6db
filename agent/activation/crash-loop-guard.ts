import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../storage/atomic-file.js';

/** Bring-ups of one model that may crash the agent before it is given up. */
export const MAX_BRING_UP_ATTEMPTS = 3;

const AttemptsSchema = z.record(z.string(), z.number().int().positive());

/**
 * Counts, across restarts, the bring-ups (load + health check) of each model that have not
 * finished. `begin` is written to disk before the risky part and `settle` after it, so a count
 * that keeps growing means the model takes the whole agent down (a native crash, the kernel's
 * OOM killer) and must not be tried again. The file is `activations-in-progress.json`:
 * `{ "<model sha256>": attempts }`.
 */
export class CrashLoopGuard {
  readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, 'activations-in-progress.json');
  }

  /** Unfinished bring-ups of the model so far. */
  async attempts(sha256: string): Promise<number> {
    return (await this.#load())[sha256] ?? 0;
  }

  /** Whether the model has crashed the agent often enough to be given up. */
  async exhausted(sha256: string): Promise<boolean> {
    return (await this.attempts(sha256)) >= MAX_BRING_UP_ATTEMPTS;
  }

  /** Records one more bring-up of the model, durably; returns which attempt this is. */
  async begin(sha256: string): Promise<number> {
    const all = await this.#load();
    all[sha256] = (all[sha256] ?? 0) + 1;
    await this.#save(all);
    return all[sha256];
  }

  /** The bring-up ended without taking the agent down, whatever its outcome. */
  async settle(sha256: string): Promise<void> {
    const all = await this.#load();
    if (!(sha256 in all)) return;
    delete all[sha256];
    await this.#save(all);
  }

  async #load(): Promise<Record<string, number>> {
    // A torn or foreign file must not stop the agent from serving: count from zero again.
    const parsed = AttemptsSchema.safeParse(await readJsonFile(this.file).catch(() => undefined));
    return parsed.success ? parsed.data : {};
  }

  #save(all: Record<string, number>): Promise<void> {
    return writeFileAtomic(this.file, `${JSON.stringify(all)}\n`);
  }
}
