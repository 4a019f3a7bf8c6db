import type { InferenceSession } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { TensorSpec } from '../../common/manifest.js';
import type { Holdout } from './holdout.js';
import { scoreHoldout } from './score-holdout.js';

const CLASSES = 4;
const INPUTS: TensorSpec[] = [{ name: 'x', elemType: 'float32', shape: ['N', 1] }];

/** A holdout whose sample i is the number i, labelled `labels[i]`. */
function holdout(labels: number[], reference: number[] | null = null): Holdout {
  return {
    x: Float32Array.from(labels, (_, i) => i),
    sampleShape: [1],
    count: labels.length,
    labels,
    reference,
  };
}

/** A model that answers `answers[i]` (one-hot scores) for sample i. */
function fakeSession(answers: number[]): Pick<InferenceSession, 'run' | 'outputNames'> {
  const session = {
    outputNames: ['probs'],
    run: (feeds: InferenceSession.FeedsType) => {
      const sample = (feeds.x as { data: Float32Array }).data[0]!;
      const scores = new Float32Array(CLASSES);
      scores[answers[sample]!] = 1;
      return Promise.resolve({ probs: { data: scores } } as unknown as InferenceSession.ReturnType);
    },
  };
  return session;
}

describe('scoreHoldout', () => {
  const labels = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1];

  it('scores top-1 accuracy and agreement with the reference', async () => {
    const answers = [...labels];
    answers[2] = 3;
    const score = await scoreHoldout(fakeSession(answers), holdout(labels, answers), INPUTS);
    expect(score).toEqual({
      samples: 10,
      accuracy: 0.9,
      top1Agreement: 1,
      agreementBasis: 'reference',
      nonFinite: 0,
    });
  });

  it('moves a simulated fault’s share of predictions to the next class, always the same ones', async () => {
    const session = fakeSession(labels);
    const flipped = await scoreHoldout(session, holdout(labels, labels), INPUTS, {
      flipShare: 0.3,
    });
    // Samples 3, 6 and 9 (labels 3, 2, 1) now answer 0 (wrapping round), 3 and 2.
    expect(flipped).toMatchObject({ samples: 10, accuracy: 0.7, top1Agreement: 0.7 });
    expect(
      await scoreHoldout(session, holdout(labels, labels), INPUTS, { flipShare: 0.3 }),
    ).toEqual(flipped);
    expect(await scoreHoldout(session, holdout(labels), INPUTS, { flipShare: 1 })).toMatchObject({
      accuracy: 0,
      top1Agreement: 0,
    });
    expect(await scoreHoldout(session, holdout(labels), INPUTS, { flipShare: 0 })).toMatchObject({
      accuracy: 1,
    });
  });

  it('can make a wrong answer right, as a real kernel error could', async () => {
    // Sample 1 answers 0 where the label is 1; flipping moves it to 1.
    const answers = [0, 0];
    const score = await scoreHoldout(fakeSession(answers), holdout([0, 1]), INPUTS, {
      flipShare: 0.5,
    });
    expect(score.accuracy).toBe(1);
  });
});
