import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeFileAtomic } from '../storage/atomic-file.js';

const AppliedSchema = z.object({ revision: z.number().int().nonnegative() });

/**
 * The desired-state KV revision the device last applied, kept across restarts so each revision
 * is applied once: a re-delivered entry (every new watch starts with the latest one) is skipped.
 * File: `desired-state-applied.json`, replaced atomically.
 */
export class AppliedRevisionStore {
  readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, 'desired-state-applied.json');
  }

  /** 0 when nothing was applied yet (KV revisions start at 1). */
  async load(): Promise<number> {
    const json = await readJsonFile(this.file).catch(() => undefined);
    const parsed = AppliedSchema.safeParse(json);
    // Unreadable means "apply the latest again": safe, since applying is idempotent.
    return parsed.success ? parsed.data.revision : 0;
  }

  async save(revision: number): Promise<void> {
    await writeFileAtomic(
      this.file,
      `${JSON.stringify({ revision, appliedAt: new Date().toISOString() })}\n`,
    );
  }
}
