import type { InferenceSession } from 'onnxruntime-node';
import type { ModelManifest, SignedManifest } from '../../common/manifest.js';
import { loadSession } from '../inference/load-session.js';

/**
 * A loaded model and the manifest it was verified against. Retiring it releases the session
 * only once the runs already started on it have finished, so swapping models never pulls a
 * session from under a request.
 */
export class ServedModel {
  readonly signed: SignedManifest;
  readonly session: InferenceSession;
  #running = 0;
  #retired = false;
  #released: Promise<void> | undefined;

  private constructor(signed: SignedManifest, session: InferenceSession) {
    this.signed = signed;
    this.session = session;
  }

  /** `threads`: intra-op threads (see inferenceThreads); absent leaves ONNX Runtime's default. */
  static async load(
    file: string,
    signed: SignedManifest,
    options: { threads?: number } = {},
  ): Promise<ServedModel> {
    return new ServedModel(signed, await loadSession(file, options));
  }

  get manifest(): ModelManifest {
    return this.signed.manifest;
  }

  async run(feeds: InferenceSession.FeedsType): Promise<InferenceSession.ReturnType> {
    this.#running += 1;
    try {
      return await this.session.run(feeds);
    } finally {
      this.#running -= 1;
      if (this.#retired && this.#running === 0) void this.#release();
    }
  }

  /** No new runs should start; resolves once the session is released. */
  retire(): Promise<void> {
    this.#retired = true;
    return this.#running === 0 ? this.#release() : Promise.resolve();
  }

  #release(): Promise<void> {
    // A session that cannot be released only leaks its memory; the model is out of service
    // either way, and nobody waits on the release to serve.
    this.#released ??= this.session.release().catch(() => {});
    return this.#released;
  }
}
