import type { Logger } from '../../common/logger.js';
import { deviceInboxPrefix } from '../../common/names.js';
import { connectNats, redactUrl, type NatsConnection } from '../../common/nats.js';
import { Backoff, type BackoffOptions } from '../heartbeat/backoff.js';
import { abortable, pause } from '../heartbeat/pause.js';

export interface NatsLinkOptions {
  /** From enrollment or the latest heartbeat: the servers, no credentials. */
  url: string;
  /** The device this link is: its replies come to its own inbox prefix. */
  deviceId: string;
  /**
   * The device's current fleet credential, presented at each (re)connect: the control plane's
   * auth callout answers with this device's NATS rights. Read again at every connect, so a
   * renewed credential is used from the next reconnect on.
   */
  credential: () => string;
  /**
   * A CA file (PEM) for the server's certificate, trusted besides the system's roots; TLS is then
   * required. Without it a tls:// URL uses TLS verified against the system's roots.
   */
  caFile?: string;
  backoff: BackoffOptions;
  logger: Logger;
}

/**
 * The agent's one NATS connection, as the device itself: the server's auth callout gives it the
 * rights of this device only (its desired-state keys, its class's models, nothing to write). The first connect is
 * retried with backoff for as long as it takes (a device may boot before its network); after
 * that the client reconnects by itself, forever. The URL is only ever logged redacted.
 */
export class NatsLink {
  readonly #o: NatsLinkOptions;
  readonly #closed = new AbortController();
  readonly #onReconnect = new Set<() => void>();
  #url: string;
  /** Aborted when the link moves to another URL: a connect still retrying the old one stops. */
  #attempt = new AbortController();
  #connecting: Promise<NatsConnection> | undefined;

  constructor(options: NatsLinkOptions) {
    this.#o = options;
    this.#url = options.url;
  }

  /** Where this device's replies and deliveries go (`_INBOX.<deviceId>`). */
  get inboxPrefix(): string {
    return deviceInboxPrefix(this.#o.deviceId);
  }

  /** The connection once there is one; starts connecting on first use. */
  connection(signal: AbortSignal): Promise<NatsConnection> {
    this.#connecting ??= this.#connect(this.#url, this.#attempt.signal);
    return abortable(this.#connecting, signal);
  }

  /**
   * Moves to another URL (the control plane advertises a new NATS server): the current
   * connection, or the attempt to make one, is dropped; the next connection() connects to `url`,
   * and the onReconnect listeners run so that watches and transfers start over on it.
   */
  async switchTo(url: string): Promise<void> {
    if (url === this.#url || this.#closed.signal.aborted) return;
    this.#o.logger.info(
      { natsUrl: redactUrl(url) },
      'moving to the NATS URL the control plane advertises',
    );
    this.#url = url;
    await this.#startOver('the NATS link moved to another URL');
  }

  /**
   * Connects again: the device's rights changed (another hardware class: another track and
   * release bucket), and the server gives a connection the rights it had when it was made.
   * The control plane also closes such connections; this covers one made while it did so.
   */
  async reconnect(): Promise<void> {
    if (this.#closed.signal.aborted) return;
    this.#o.logger.info('connecting to NATS again for the rights of its new hardware class');
    await this.#startOver('the NATS link connects again');
  }

  async #startOver(why: string): Promise<void> {
    const old = this.#connecting;
    this.#attempt.abort(new Error(why));
    this.#attempt = new AbortController();
    this.#connecting = undefined;
    for (const listener of this.#onReconnect) listener();
    const nc = await old?.catch(() => undefined);
    await nc?.close();
  }

  /** Calls `listener` after each reconnect, until the returned function is called. */
  onReconnect(listener: () => void): () => void {
    this.#onReconnect.add(listener);
    return () => this.#onReconnect.delete(listener);
  }

  async close(): Promise<void> {
    this.#closed.abort(new Error('the NATS link is closed'));
    const nc = await this.#connecting?.catch(() => undefined);
    await nc?.close();
  }

  async #connect(url: string, moved: AbortSignal): Promise<NatsConnection> {
    const { deviceId, credential, logger } = this.#o;
    const backoff = new Backoff(this.#o.backoff);
    const natsUrl = redactUrl(url);
    const stop = AbortSignal.any([this.#closed.signal, moved]);
    for (;;) {
      try {
        const nc = await connectNats(url, {
          name: `edgeforge-agent-${deviceId}`,
          token: credential,
          inboxPrefix: this.inboxPrefix,
          // '' rather than undefined: the agent takes its CA from its own settings only.
          caFile: this.#o.caFile ?? '',
        });
        logger.info({ natsUrl }, 'connected to NATS');
        void this.#logStatus(nc);
        return nc;
      } catch (err) {
        const retryInMs = backoff.next();
        logger.warn(
          { natsUrl, error: (err as Error).message, retryInMs: Math.round(retryInMs) },
          'cannot reach NATS yet; retrying',
        );
        if (!(await pause(retryInMs, stop))) throw stop.reason;
      }
    }
  }

  async #logStatus(nc: NatsConnection): Promise<void> {
    const { logger } = this.#o;
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') logger.warn('lost the NATS connection; reconnecting');
      else if (s.type === 'reconnect') {
        logger.info('reconnected to NATS');
        for (const listener of this.#onReconnect) listener();
      }
    }
  }
}
