import type { SignedManifest } from '../../common/manifest.js';
import type { Logger } from '../../common/logger.js';
import { loadHoldout } from '../holdout/holdout.js';
import type { ModelStore } from '../models/model-store.js';
import { inferenceThreads } from '../inference/inference-threads.js';
import { flipShareFor, type SimulatedFaults } from '../simulation/simulated-faults.js';
import type { ModelSlot } from '../serving/model-slot.js';
import { ServedModel } from '../serving/served-model.js';
import { MAX_BRING_UP_ATTEMPTS, type CrashLoopGuard } from './crash-loop-guard.js';
import { checkHealth } from './health-check.js';

export type ActivationResult =
  { activated: true; health: string } | { activated: false; failure: string };

export interface RestoreResult {
  /** The model now served; null when none could be started (or there is none yet). */
  serving: SignedManifest | null;
  /** Set when the active model could not start and the previous one took its place. */
  rolledBackFrom: SignedManifest | null;
  /** Why models were passed over, for the log and the control plane. */
  problems: string[];
}

export interface ActivatorOptions {
  store: ModelStore;
  guard: CrashLoopGuard;
  slot: ModelSlot;
  /** The device's hardware threads (its profile's): the served model runs on all of them, no more. */
  deviceThreads: number;
  /** A simulated device's faults, applied in the health check; absent on a real device. */
  simulate?: SimulatedFaults;
  logger: Logger;
}

/** "model-id fp32 v3", for messages. */
export function describeModel(signed: SignedManifest): string {
  const m = signed.manifest;
  return `${m.modelId} ${m.variant} v${m.version}`;
}

/**
 * Switches the served model safely. A model is brought up (loaded, health-checked) next to the
 * one serving; only when healthy is it recorded as active and swapped in, so a failure anywhere
 * before that leaves the old model serving, and a crash leaves a state naming a complete model.
 * Bring-ups are counted by the CrashLoopGuard, so a model that takes the agent down every time
 * is given up after MAX_BRING_UP_ATTEMPTS and the previous model serves instead.
 */
export class Activator {
  readonly #o: ActivatorOptions;

  constructor(options: ActivatorOptions) {
    this.#o = options;
  }

  /** At start: serve the active model, or the previous one when the active cannot start. */
  async restore(): Promise<RestoreResult> {
    const { store, slot, logger } = this.#o;
    const state = await store.loadState();
    const problems: string[] = [];
    for (const signed of [state.active, state.previous]) {
      if (!signed) continue;
      const problem = await this.#givenUp(signed, 'starts');
      if (problem) {
        problems.push(problem);
        continue;
      }
      let model: ServedModel;
      try {
        model = (await this.#bringUp(signed)).model;
      } catch (err) {
        problems.push(`${describeModel(signed)} cannot start: ${(err as Error).message}`);
        continue;
      }
      const rolledBackFrom = signed === state.active ? null : state.active;
      if (rolledBackFrom) await store.saveState({ active: signed, previous: null });
      slot.swap(model);
      logger.info({ ...idsOf(signed), problems }, 'serving the last good model');
      return { serving: signed, rolledBackFrom, problems };
    }
    return { serving: null, rolledBackFrom: null, problems };
  }

  /** Brings `signed` up next to the served model and, when healthy, serves it instead. */
  async activate(signed: SignedManifest): Promise<ActivationResult> {
    const { store, slot } = this.#o;
    const givenUp = await this.#givenUp(signed, 'activations');
    if (givenUp) return { activated: false, failure: givenUp };
    let brought: { model: ServedModel; health: string };
    try {
      brought = await this.#bringUp(signed);
    } catch (err) {
      return { activated: false, failure: (err as Error).message };
    }
    const state = await store.loadState();
    const sameModel = state.active?.manifest.model.sha256 === signed.manifest.model.sha256;
    const next = { active: signed, previous: sameModel ? state.previous : state.active };
    // The switch point: before this line a restart serves the old model, after it the new one.
    await store.saveState(next);
    slot.swap(brought.model);
    await store.prune(next);
    return { activated: true, health: brought.health };
  }

  /** Load and health-check, counted by the guard; a failure that is not a crash settles it. */
  async #bringUp(signed: SignedManifest): Promise<{ model: ServedModel; health: string }> {
    const { store, guard } = this.#o;
    const sha256 = signed.manifest.model.sha256;
    await guard.begin(sha256);
    let model: ServedModel | undefined;
    try {
      model = await ServedModel.load(store.modelFile(signed.manifest), signed, {
        threads: inferenceThreads(0, this.#o.deviceThreads),
      });
      const holdoutFile = store.holdoutFile(signed.manifest);
      const health = await checkHealth(model, holdoutFile ? await loadHoldout(holdoutFile) : null, {
        flipShare: flipShareFor(this.#o.simulate, signed.manifest.variant),
      });
      return { model, health };
    } catch (err) {
      await model?.retire();
      throw err;
    } finally {
      await guard.settle(sha256);
    }
  }

  /** Why the model is given up (and forgets it), or undefined when it may be tried. */
  async #givenUp(signed: SignedManifest, what: string): Promise<string | undefined> {
    const { guard } = this.#o;
    const sha256 = signed.manifest.model.sha256;
    const attempts = await guard.attempts(sha256);
    if (attempts < MAX_BRING_UP_ATTEMPTS) return undefined;
    await guard.settle(sha256);
    return `${describeModel(signed)} took the agent down on ${attempts} ${what} in a row; given up`;
  }
}

function idsOf(signed: SignedManifest) {
  const m = signed.manifest;
  return { modelId: m.modelId, rolloutId: m.rolloutId, variant: m.variant, version: m.version };
}
