import { z } from 'zod';
import type { DesiredState } from '../../common/desired-state.js';
import { ManifestRefusedError } from '../../common/manifest.js';
import { firstIssue } from '../models/manifest-schema.js';

const ID = /^[A-Za-z0-9_.-]{1,128}$/;

const BenchmarkSettingsSchema = z.object({
  warmupRuns: z.number().int().nonnegative(),
  minRuns: z.number().int().positive(),
  minSeconds: z.number().nonnegative(),
  threads: z.number().int().nonnegative(),
  rounds: z.number().int().min(1).max(20).optional(),
});

// Manifests stay unknown here: each is checked when it is applied, so one malformed candidate
// is refused on its own instead of taking the whole benchmark round with it.
const DesiredStateSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('benchmark'),
    rolloutId: z.string().regex(ID),
    candidates: z.array(z.unknown()).min(1),
    settings: BenchmarkSettingsSchema,
    issuedAt: z.string(),
  }),
  z.object({
    kind: z.literal('run'),
    rolloutId: z.string().regex(ID),
    model: z.unknown(),
    issuedAt: z.string(),
  }),
]);

/**
 * Parses a desired-state KV value. Throws ManifestRefusedError('malformed') naming the first
 * problem; the device reports it and keeps doing what it does.
 */
export function parseDesiredState(text: string): DesiredState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ManifestRefusedError(
      'malformed',
      `the desired state is not JSON: ${(err as Error).message}`,
    );
  }
  const parsed = DesiredStateSchema.safeParse(json);
  if (!parsed.success) {
    throw new ManifestRefusedError(
      'malformed',
      `the desired state does not fit the contract (common/desired-state.ts): ${firstIssue(parsed.error)}`,
      { rolloutId: rolloutIdOf(json) },
    );
  }
  // The original, not zod's copy: the manifests inside are signed as they are.
  return json as DesiredState;
}

/** The rollout id of a value that may not be a desired state, to say which rollout was refused. */
function rolloutIdOf(json: unknown): string | undefined {
  const id = (json as { rolloutId?: unknown } | null)?.rolloutId;
  return typeof id === 'string' && ID.test(id) ? id : undefined;
}
