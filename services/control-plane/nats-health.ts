import type { NatsConnection } from '../../common/nats.js';
import type { Logger } from '../../common/logger.js';

/**
 * Whether the control plane has its NATS connection (the registry, the benchmarks and the
 * desired state live there), from the client's status events. While it is down, fleet calls are
 * answered UNAVAILABLE at once with this reason, instead of each running into its deadline, and
 * the gRPC health service says NOT_SERVING.
 */
export class NatsHealth {
  #downSince: Date | undefined;

  constructor(
    nats: NatsConnection,
    private readonly log: Logger,
    private readonly onChange: (serving: boolean) => void = () => {},
  ) {
    void this.#follow(nats);
  }

  /** Why calls cannot be served now; undefined while NATS is connected. */
  problem(): string | undefined {
    if (!this.#downSince) return undefined;
    return (
      `the control plane has lost its NATS connection (since ${this.#downSince.toISOString()}) ` +
      'and cannot reach the fleet registry: retry with backoff'
    );
  }

  async #follow(nats: NatsConnection): Promise<void> {
    for await (const s of nats.status()) {
      if (s.type === 'disconnect' && !this.#downSince) {
        this.#downSince = new Date();
        this.log.error('lost the NATS connection: fleet calls are UNAVAILABLE until it is back');
        this.onChange(false);
      } else if (s.type === 'reconnect' && this.#downSince) {
        this.log.info(
          { downSeconds: (Date.now() - this.#downSince.getTime()) / 1000 },
          'NATS connection back: serving again',
        );
        this.#downSince = undefined;
        this.onChange(true);
      }
    }
  }
}
