import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { BenchmarkSettings, DesiredState } from '../../common/desired-state.js';
import {
  loadManifestKeyPair,
  signManifest,
  type ManifestKeyPair,
  type ModelManifest,
  type ObjectRef,
  type SignedManifest,
} from '../../common/manifest.js';
import { deviceDesiredKey, KV_BUCKETS, trackKey } from '../../common/names.js';
import { bucketOptions, type NatsConnection } from '../../common/nats.js';
import type { EdgeAgent } from '../../agent/index.js';
import { testManifest, type TestManifestParts } from './manifests.js';

/**
 * The test plays the orchestrator: it uploads models to the Object Store, signs manifests with
 * the control plane's key, and writes desired state to the KV, over a full-access (service)
 * NATS connection. Agents only ever read these.
 */
export class TestOrchestrator {
  readonly #buckets = new Map<string, Promise<ObjectStore>>();

  private constructor(
    readonly nats: NatsConnection,
    readonly desired: KV,
    readonly key: ManifestKeyPair,
  ) {}

  /** Buckets on `nats` (created when missing), signing with the key in the control plane's data dir. */
  static async open(nats: NatsConnection, controlPlaneDataDir: string): Promise<TestOrchestrator> {
    const pem = await readFile(`${controlPlaneDataDir}/manifest-signing.pem`, 'utf8');
    return new TestOrchestrator(
      nats,
      await new Kvm(nats).create(KV_BUCKETS.desiredState, bucketOptions()),
      loadManifestKeyPair(pem),
    );
  }

  /** An object store bucket (a class's release bucket), created when missing. */
  bucket(name: string): Promise<ObjectStore> {
    let opened = this.#buckets.get(name);
    if (!opened) {
      opened = new Objm(this.nats).create(name, bucketOptions());
      this.#buckets.set(name, opened);
    }
    return opened;
  }

  /** Stores `bytes` where `ref` says (a release bucket, under the manifest's object name). */
  async upload(bytes: Uint8Array, ref: ObjectRef): Promise<void> {
    await (await this.bucket(ref.bucket)).putBlob({ name: ref.name }, bytes);
  }

  sign(manifest: ModelManifest): SignedManifest {
    return signManifest(manifest, this.key.privateKey);
  }

  /** Uploads the model (and its holdout) as they are and returns the signed manifest. */
  async publish(parts: TestManifestParts): Promise<SignedManifest> {
    const manifest = testManifest(parts);
    await this.upload(parts.model, manifest.model);
    if (parts.holdout && manifest.holdout) await this.upload(parts.holdout, manifest.holdout);
    return this.sign(manifest);
  }

  /** Writes a raw desired-state value; returns its KV revision. */
  put(deviceId: string, value: DesiredState | string): Promise<number> {
    return this.desired.put(
      deviceDesiredKey(deviceId),
      typeof value === 'string' ? value : JSON.stringify(value),
    );
  }

  /** Writes a release track's entry for one cohort of a class; returns its KV revision. */
  track(
    hardwareClass: string,
    cohort: number,
    rolloutId: string,
    model: SignedManifest,
  ): Promise<number> {
    const state: DesiredState = {
      kind: 'run',
      rolloutId,
      model,
      issuedAt: new Date().toISOString(),
    };
    return this.desired.put(trackKey(hardwareClass, cohort), JSON.stringify(state));
  }

  /** Removes a device's own entry: it follows its track again. */
  async clear(deviceId: string): Promise<void> {
    await this.desired.delete(deviceDesiredKey(deviceId));
  }

  run(deviceId: string, rolloutId: string, model: SignedManifest): Promise<number> {
    return this.put(deviceId, {
      kind: 'run',
      rolloutId,
      model,
      issuedAt: new Date().toISOString(),
    });
  }

  benchmark(
    deviceId: string,
    rolloutId: string,
    candidates: SignedManifest[],
    settings: BenchmarkSettings,
  ): Promise<number> {
    return this.put(deviceId, {
      kind: 'benchmark',
      rolloutId,
      candidates,
      settings,
      issuedAt: new Date().toISOString(),
    });
  }
}

/** A model's bytes with one byte flipped, as a corrupted store or link would deliver them. */
export function flipByte(bytes: Uint8Array, at = Math.floor(bytes.length / 2)): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeUInt8(copy.readUInt8(at) ^ 0xff, at);
  return copy;
}

/** POST /v1/infer on an agent's local endpoint. */
export async function infer(
  agent: Pick<EdgeAgent, 'inferenceUrl'> | string,
  inputs: number[],
): Promise<{ status: number; body: InferResponse }> {
  const base = typeof agent === 'string' ? agent : agent.inferenceUrl;
  const response = await fetch(`${base}/v1/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs }),
  });
  return { status: response.status, body: (await response.json()) as InferResponse };
}

export interface InferResponse {
  model: string;
  variant: string;
  version: number;
  latencyMs: number;
  outputs: Record<string, { dims: number[]; data: number[] }>;
  error?: string;
}

/** The top-1 class of the first sample in a response of the test classifiers. */
export function topClass(body: InferResponse): number {
  const scores = Object.values(body.outputs)[0]?.data ?? [];
  const classes = Object.values(body.outputs)[0]?.dims.at(-1) ?? 0;
  const first = scores.slice(0, classes);
  return first.indexOf(Math.max(...first));
}

/** One sample for the hot-feature classifiers: all zeros but feature `hot`. */
export function hotSample(hot: number, features = 16): number[] {
  return Array.from({ length: features }, (_, i) => (i === hot ? 1 : 0));
}

/** The active model the agent's endpoint reports (GET /v1/model), or the HTTP status. */
export async function servedModel(
  inferenceUrl: string,
): Promise<{ model: string; variant: string; version: number; sha256: string } | number> {
  const response = await fetch(`${inferenceUrl}/v1/model`);
  return response.ok
    ? ((await response.json()) as {
        model: string;
        variant: string;
        version: number;
        sha256: string;
      })
    : response.status;
}

/** The benchmark report the control plane recorded for (rollout, variant, device), if any. */
export async function recordedBenchmark(
  nats: NatsConnection,
  rolloutId: string,
  variant: string,
  deviceId: string,
): Promise<Record<string, unknown> | undefined> {
  const kv = await new Kvm(nats).open(KV_BUCKETS.benchmarks);
  const entry = await kv.get(`${rolloutId}.${variant}.${deviceId}`);
  return entry?.operation === 'PUT' ? entry.json<Record<string, unknown>>() : undefined;
}

/**
 * What an agent keeps of its models on disk: verified files, transfers in progress and its model
 * state. A refusal must leave all three as they were.
 */
export async function modelStore(
  agent: Pick<EdgeAgent, 'options'>,
): Promise<{ models: string[]; downloads: string[]; state: string }> {
  const dir = agent.options.dataDir;
  return {
    models: (await readdir(join(dir, 'models'))).sort(),
    downloads: (await readdir(join(dir, 'downloads'))).sort(),
    state: await readFile(join(dir, 'model-state.json'), 'utf8'),
  };
}
