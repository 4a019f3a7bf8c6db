import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Counter } from 'prom-client';
import { EdgeforgeError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { parseHostPort } from '../../common/metrics-server.js';
import { BadInferRequestError, parseInferRequest } from './infer-request.js';
import type { InferenceLatency } from './inference-latency.js';
import type { ModelSlot } from './model-slot.js';

/** Inputs of a few images fit easily; anything larger is not a request for an edge model. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface InferenceServerOptions {
  slot: ModelSlot;
  latency: InferenceLatency;
  /** Requests by HTTP status code. */
  requests: Counter<'code'>;
  /** The device's hardware class, a label of the latency histogram. */
  hardwareClass: () => string;
  /** A simulated slow device's extra time per request (SimulatedFaults.servingDelayMs). */
  simulatedDelayMs?: number;
  logger: Logger;
}

class HttpError extends EdgeforgeError {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The device's local inference endpoint, for applications on the device:
 *   POST /v1/infer  {"inputs": [...] | {"name": [...]}}
 *                   → {"outputs": {name: {"dims", "data"}}, "model", "variant", "version", "latencyMs"}
 *   GET  /v1/model  → the active model's ids
 * 400 names what is wrong with a request; 503 means no model is active yet.
 */
export class InferenceServer {
  readonly #o: InferenceServerOptions;
  readonly #server: Server;

  constructor(options: InferenceServerOptions) {
    this.#o = options;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    });
  }

  /** Listens on host:port (port 0 picks one); returns the base URL, e.g. http://127.0.0.1:9466. */
  async listen(address: string): Promise<string> {
    const { host, port } = parseHostPort(address);
    try {
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen(port, host, () => {
          this.#server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw new EdgeforgeError(
        `cannot serve inference on ${address}: ${(err as Error).message}` +
          ((err as NodeJS.ErrnoException).code === 'EADDRINUSE'
            ? '; another process has that port: choose another with --serve'
            : ''),
        { cause: err },
      );
    }
    const bound = (this.#server.address() as AddressInfo).port;
    return `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = once(this.#server, 'close');
    this.#server.close();
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url?.split('?')[0];
    if (path === '/v1/infer') {
      if (req.method !== 'POST') throw new HttpError(405, 'use POST for /v1/infer');
      await this.#infer(req, res);
    } else if (path === '/v1/model') {
      if (req.method !== 'GET') throw new HttpError(405, 'use GET for /v1/model');
      const m = this.#model().manifest;
      this.#reply(res, 200, {
        model: m.modelId,
        variant: m.variant,
        version: m.version,
        sha256: m.model.sha256,
        rolloutId: m.rolloutId,
      });
    } else {
      throw new HttpError(404, 'not found: POST /v1/infer or GET /v1/model');
    }
  }

  async #infer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req);
    // Taken once: the whole request runs on this model even if activation swaps it meanwhile.
    const model = this.#model();
    const m = model.manifest;
    const feeds = parseInferRequest(body, m.inputs);
    const start = performance.now();
    const outputs = await model.run(feeds);
    // A simulated slow device (profile override file): the delay counts as serving latency.
    const delayMs = this.#o.simulatedDelayMs ?? 0;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const latencyMs = performance.now() - start;
    this.#o.latency.observe(latencyMs / 1000, {
      model: m.modelId,
      variant: m.variant,
      hardwareClass: this.#o.hardwareClass(),
    });
    this.#reply(res, 200, {
      model: m.modelId,
      variant: m.variant,
      version: m.version,
      latencyMs,
      outputs: Object.fromEntries(
        Object.entries(outputs).map(([name, t]) => [
          name,
          { dims: t.dims, data: Array.from(t.data as ArrayLike<number | bigint>, Number) },
        ]),
      ),
    });
  }

  #model() {
    const model = this.#o.slot.current;
    if (!model) {
      throw new HttpError(
        503,
        'no model is active on this device yet; it serves once its desired state names one',
      );
    }
    return model;
  }

  #fail(res: ServerResponse, err: unknown): void {
    const status =
      err instanceof HttpError ? err.status : err instanceof BadInferRequestError ? 400 : 500;
    if (status === 500) this.#o.logger.error({ err }, 'inference request failed');
    this.#reply(res, status, { error: (err as Error).message });
  }

  #reply(res: ServerResponse, status: number, body: unknown): void {
    this.#o.requests.inc({ code: String(status) });
    if (res.headersSent) return;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new HttpError(413, `the body is over ${MAX_BODY_BYTES} bytes; send fewer samples`);
    }
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${(err as Error).message}`);
  }
}
