import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../common/logger.js';
import type { SignedManifest } from '../../common/manifest.js';
import { testManifest } from '../../test/helpers/manifests.js';
import { npzBytes } from '../../test/helpers/npz.js';
import { hotFeatureClassifier, matchingHoldout } from '../../test/helpers/onnx-models.js';
import { loadSession } from '../inference/load-session.js';
import { ModelStore } from '../models/model-store.js';
import type { SimulatedFaults } from '../simulation/simulated-faults.js';
import { ModelSlot } from '../serving/model-slot.js';
import { Activator } from './activator.js';
import { CrashLoopGuard, MAX_BRING_UP_ATTEMPTS } from './crash-loop-guard.js';

// The real loader, watched: which thread count each served session gets.
vi.mock('../inference/load-session.js', async (importOriginal) => {
  const real = await importOriginal<{ loadSession: typeof loadSession }>();
  return { ...real, loadSession: vi.fn(real.loadSession) };
});

const HOLDOUT = npzBytes(matchingHoldout());

describe('Activator', () => {
  let dataDir: string;
  let store: ModelStore;
  let slot: ModelSlot;
  let guard: CrashLoopGuard;
  const activator = (options: { deviceThreads?: number; simulate?: SimulatedFaults } = {}) =>
    new Activator({
      store,
      guard,
      slot,
      deviceThreads: options.deviceThreads ?? 2,
      simulate: options.simulate,
      logger: createLogger('test', 'silent'),
    });

  /** Puts a model (and the shared holdout) in the store as a verified download would. */
  async function stored(
    version: number,
    options: { shift?: number; variant?: string } = {},
  ): Promise<SignedManifest> {
    const model = hotFeatureClassifier({ scale: version + 1, shift: options.shift });
    const manifest = testManifest({
      model,
      holdout: HOLDOUT,
      version,
      variant: options.variant,
      hardwareClasses: ['c'],
    });
    await writeFile(store.modelFile(manifest), model);
    await writeFile(store.holdoutFile(manifest)!, HOLDOUT);
    return { manifest, signature: 'c2ln' };
  }

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'edgeforge-activator-'));
    store = new ModelStore(dataDir);
    await store.open();
    slot = new ModelSlot();
    guard = new CrashLoopGuard(dataDir);
  });
  afterEach(async () => {
    slot.swap(undefined);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('swaps a healthy model in and keeps the one it replaced for rollback', async () => {
    const v1 = await stored(1);
    expect((await activator().activate(v1)).activated).toBe(true);
    const v2 = await stored(2);
    const result = await activator().activate(v2);
    expect(result).toEqual({ activated: true, health: 'accuracy 1.000 on 20 holdout samples' });
    expect(slot.current?.signed).toEqual(v2);
    expect(await store.loadState()).toEqual({ active: v2, previous: v1 });
    expect(await guard.attempts(v2.manifest.model.sha256)).toBe(0);
  });

  it('keeps the old model serving when the new one fails its health check', async () => {
    const v1 = await stored(1);
    await activator().activate(v1);
    const broken = await stored(2, { shift: 1 }); // right on no holdout sample
    const result = await activator().activate(broken);
    expect(result).toEqual({
      activated: false,
      failure:
        'accuracy 0.000 on 20 holdout samples is more than 0.1 below the central accuracy 1.000',
    });
    expect(slot.current?.signed).toEqual(v1);
    expect(await store.loadState()).toEqual({ active: v1, previous: null });
  });

  it('refuses a file ONNX Runtime cannot load, naming the file', async () => {
    const v1 = await stored(1);
    await writeFile(store.modelFile(v1.manifest), 'not onnx');
    const result = await activator().activate(v1);
    expect(result.activated).toBe(false);
    expect(result.activated || result.failure).toMatch(/ONNX Runtime cannot load .*\.onnx/);
  });

  it('at start serves the active model', async () => {
    const [v1, v2] = [await stored(1), await stored(2)];
    await store.saveState({ active: v2, previous: v1 });
    expect(await activator().restore()).toEqual({
      serving: v2,
      rolledBackFrom: null,
      problems: [],
    });
    expect(slot.current?.signed).toEqual(v2);
  });

  it('gives up a model that took the agent down on every start and restores the previous', async () => {
    const [v1, v2] = [await stored(1), await stored(2)];
    await store.saveState({ active: v2, previous: v1 });
    // Three starts began bringing v2 up and never finished: the agent died each time.
    for (let i = 0; i < MAX_BRING_UP_ATTEMPTS; i++) await guard.begin(v2.manifest.model.sha256);

    const result = await activator().restore();
    expect(result).toEqual({
      serving: v1,
      rolledBackFrom: v2,
      problems: ['hot-feature fp32 v2 took the agent down on 3 starts in a row; given up'],
    });
    expect(slot.current?.signed).toEqual(v1);
    expect(await store.loadState()).toEqual({ active: v1, previous: null });
    expect(await guard.attempts(v2.manifest.model.sha256)).toBe(0);
  });

  it('serves nothing, and says why, when no stored model can start', async () => {
    const v1 = await stored(1);
    await store.saveState({ active: v1, previous: null });
    await rm(store.modelFile(v1.manifest));
    const result = await activator().restore();
    expect(result.serving).toBeNull();
    expect(result.problems).toEqual([
      expect.stringMatching(/^hot-feature fp32 v1 cannot start: ONNX Runtime cannot load/),
    ]);
    expect(slot.current).toBeUndefined();
  });

  it('serves on every hardware thread of the device and no more', async () => {
    vi.mocked(loadSession).mockClear();
    await activator({ deviceThreads: 1 }).activate(await stored(1));
    expect(vi.mocked(loadSession).mock.calls.map(([, options]) => options)).toEqual([
      { threads: 1 },
    ]);
  });

  describe('on a device that simulates an accuracy fault', () => {
    const simulate = (flipShare: number) => ({
      accuracyFaults: [{ variants: 'int8_*', flipShare }],
    });

    it('refuses a matching variant whose flipped accuracy is more than 0.1 below central', async () => {
      const int8 = await stored(1, { variant: 'int8_static_minmax' });
      const result = await activator({ simulate: simulate(0.15) }).activate(int8);
      expect(result).toEqual({
        activated: false,
        failure:
          'accuracy 0.850 on 20 holdout samples (simulated fault: 0.15 of top-1 predictions ' +
          'flipped) is more than 0.1 below the central accuracy 1.000',
      });
      expect(slot.current).toBeUndefined();
      expect(await store.loadState()).toEqual({ active: null, previous: null });
    });

    it('still activates a matching variant that loses no more than 0.1', async () => {
      const int8 = await stored(1, { variant: 'int8_dynamic' });
      expect(await activator({ simulate: simulate(0.1) }).activate(int8)).toEqual({
        activated: true,
        health:
          'accuracy 0.900 on 20 holdout samples (simulated fault: 0.1 of top-1 predictions flipped)',
      });
    });

    it('activates variants the fault does not name as on any device', async () => {
      const fp32 = await stored(1, { variant: 'fp32' });
      expect(await activator({ simulate: simulate(1) }).activate(fp32)).toEqual({
        activated: true,
        health: 'accuracy 1.000 on 20 holdout samples',
      });
    });
  });
});
