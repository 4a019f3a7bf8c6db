import { describe, expect, it } from 'vitest';
import { ManifestRefusedError } from '../../common/manifest.js';
import { parseDesiredState } from './desired-state-schema.js';

describe('parseDesiredState', () => {
  it('keeps the signed manifests exactly as written', () => {
    const model = {
      manifest: { schema: 'edgeforge.manifest/v1', extra: { z: 1, a: 2 } },
      signature: 's',
    };
    const text = JSON.stringify({ kind: 'run', rolloutId: 'r-1', model, issuedAt: 'now' });
    const desired = parseDesiredState(text);
    expect(desired.kind === 'run' && desired.model).toEqual(model);
  });

  it('refuses what is not a desired state as malformed, naming the problem and the rollout', () => {
    const refusal = (text: string) => {
      try {
        parseDesiredState(text);
      } catch (err) {
        expect(err).toBeInstanceOf(ManifestRefusedError);
        return err as ManifestRefusedError;
      }
      throw new Error('expected a refusal');
    };
    expect(refusal('{"kind": "run"').message).toMatch(/^malformed: the desired state is not JSON/);
    const noSettings = refusal(
      JSON.stringify({ kind: 'benchmark', rolloutId: 'r-7', candidates: [{}], issuedAt: 'now' }),
    );
    expect(noSettings.message).toMatch(/does not fit the contract .*: settings: /);
    expect(noSettings.context.rolloutId).toBe('r-7');
    expect(
      refusal(JSON.stringify({ kind: 'benchmark', rolloutId: 'r', candidates: [], settings: {} }))
        .message,
    ).toMatch(/candidates/);
    expect(refusal('{"kind": "teleport"}').reason).toBe('malformed');
  });
});
