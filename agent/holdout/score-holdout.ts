import type { InferenceSession } from 'onnxruntime-node';
import type { TensorSpec } from '../../common/manifest.js';
import { argmax, holdoutFeeds, InputSpecError } from '../inference/feeds.js';
import { isFlipped } from '../simulation/simulated-faults.js';
import type { Holdout } from './holdout.js';

export interface HoldoutScore {
  samples: number;
  /** Top-1 accuracy against the labels `y`. */
  accuracy: number;
  /**
   * Share of samples where this model's top-1 class equals the fp32 reference model's. Bundles
   * without a `reference` array cannot tell, so it is then the accuracy (basis "labels"): with
   * labels as the stand-in reference, agreeing with the fp32 model is only measurable as being
   * right where it was.
   */
  top1Agreement: number;
  agreementBasis: 'reference' | 'labels';
  /** Samples whose output held NaN or infinity: a broken model, whatever its accuracy. */
  nonFinite: number;
}

export interface ScoreOptions {
  /**
   * A simulated accuracy fault (SimulatedFaults): this share of the samples, a fixed evenly
   * spread subset, has its top-1 class moved to the next class before scoring. 0 or absent: none.
   */
  flipShare?: number;
}

/** Runs every holdout sample (batch 1) and scores the first output's top-1 class. */
export async function scoreHoldout(
  session: Pick<InferenceSession, 'run' | 'outputNames'>,
  holdout: Holdout,
  inputs: readonly TensorSpec[],
  options: ScoreOptions = {},
): Promise<HoldoutScore> {
  const flipShare = options.flipShare ?? 0;
  const outputName = session.outputNames[0];
  if (outputName === undefined) throw new InputSpecError('the model has no outputs to score');
  let correct = 0;
  let agreeing = 0;
  let nonFinite = 0;
  for (let i = 0; i < holdout.count; i++) {
    const output = (await session.run(holdoutFeeds(holdout, i, inputs)))[outputName];
    const data = output?.data;
    if (!(data instanceof Float32Array || data instanceof Float64Array)) {
      throw new InputSpecError(
        `output ${outputName} is ${output?.type ?? 'missing'}; scoring needs float scores per class`,
      );
    }
    if (!data.every(Number.isFinite)) nonFinite += 1;
    let predicted = argmax(data, 0, data.length);
    if (flipShare > 0 && isFlipped(i, flipShare)) predicted = (predicted + 1) % data.length;
    if (predicted === holdout.labels[i]) correct += 1;
    if (predicted === (holdout.reference ?? holdout.labels)[i]) agreeing += 1;
  }
  const share = (n: number) => (holdout.count === 0 ? 0 : n / holdout.count);
  return {
    samples: holdout.count,
    accuracy: share(correct),
    top1Agreement: share(agreeing),
    agreementBasis: holdout.reference ? 'reference' : 'labels',
    nonFinite,
  };
}
