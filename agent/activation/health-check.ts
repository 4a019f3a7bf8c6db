import { EdgeforgeError } from '../../common/errors.js';
import type { Holdout } from '../holdout/holdout.js';
import { scoreHoldout } from '../holdout/score-holdout.js';
import { randomFeeds } from '../inference/feeds.js';
import type { ServedModel } from '../serving/served-model.js';

/**
 * How far below the central accuracy a model may score on the device's holdout run before it is
 * refused. Quantized variants lose a point or two; ten points means the model is broken here
 * (wrong kernels, a bad build for this CPU), not merely compressed.
 */
export const ACCURACY_TOLERANCE = 0.1;

export class HealthCheckError extends EdgeforgeError {
  override name = 'HealthCheckError';
}

/**
 * Checks a loaded model before it serves: its inputs are the manifest's, and on the holdout its
 * outputs are finite and its accuracy is within ACCURACY_TOLERANCE of the central accuracy
 * (without a holdout, one random input must give finite outputs). Returns what it measured.
 * `flipShare` is a simulated device's accuracy fault for this model (see SimulatedFaults).
 */
export async function checkHealth(
  model: ServedModel,
  holdout: Holdout | null,
  options: { flipShare?: number } = {},
): Promise<string> {
  const { manifest, session } = model;
  const missing = manifest.inputs.map((i) => i.name).filter((n) => !session.inputNames.includes(n));
  if (missing.length > 0) {
    throw new HealthCheckError(
      `the model has inputs ${session.inputNames.join(', ')}, not the manifest's ${missing.join(', ')}`,
    );
  }
  if (holdout === null) {
    const outputs = await model.run(randomFeeds(manifest.inputs));
    const finite = Object.values(outputs).every(
      (o) => !(o.data instanceof Float32Array) || o.data.every(Number.isFinite),
    );
    if (!finite) throw new HealthCheckError('a random input gives NaN or infinite outputs');
    return 'finite outputs on a random input (no holdout bundle)';
  }
  const flipShare = options.flipShare ?? 0;
  const score = await scoreHoldout(session, holdout, manifest.inputs, { flipShare });
  if (score.nonFinite > 0) {
    throw new HealthCheckError(
      `${score.nonFinite} of ${score.samples} holdout samples give NaN or infinite outputs`,
    );
  }
  // A simulated fault says so in every message, so nobody mistakes it for a broken build.
  const simulated =
    flipShare > 0 ? ` (simulated fault: ${flipShare} of top-1 predictions flipped)` : '';
  const measured = `accuracy ${score.accuracy.toFixed(3)} on ${score.samples} holdout samples${simulated}`;
  const central = manifest.centralAccuracy;
  if (central !== null && score.accuracy < central - ACCURACY_TOLERANCE) {
    throw new HealthCheckError(
      `${measured} is more than ${ACCURACY_TOLERANCE} below the central accuracy ${central.toFixed(3)}`,
    );
  }
  return measured;
}
