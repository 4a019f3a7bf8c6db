import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../../common/logger.js';
import type { DeviceRecord } from '../registry/device-record.js';
import { NATS_FLEET_ACCOUNT } from './auth-callout.js';

/** How long the servers of a cluster get to say which connections a device holds. */
const CONNZ_WAIT_MS = 1_000;
/**
 * A connection whose authorisation was being decided (on the record before the change) when
 * the servers were asked is not listed yet: a second sweep this much later closes it too.
 */
export const SECOND_SWEEP_MS = 3_000;

interface Connz {
  server?: { id?: string };
  data?: { connections?: { cid: number }[] };
}

/**
 * Whether a registry change must cut a device's NATS connections: it was revoked or deleted
 * (it must lose access now, not when its user JWT expires), it got another device key (the old
 * key's credentials are void: whoever holds one is cut off), or its class changed (its
 * permissions name the old class's track and release bucket: it reconnects and gets new ones).
 */
export function mustDisconnect(
  before: DeviceRecord | undefined,
  after: DeviceRecord | undefined,
): boolean {
  if (!before) return false;
  if (!after) return true;
  if (!before.revokedAt && after.revokedAt) return true;
  if (before.credentialsValidAfter !== after.credentialsValidAfter) return true;
  return before.hardwareClass !== after.hardwareClass;
}

/**
 * Closes a device's NATS connections on every server of the cluster, through the system
 * account: CONNZ (filtered by the user name its JWT carries, the device id) finds them, KICK
 * closes each. A kicked agent reconnects at once and goes through the auth callout again, which
 * refuses a revoked or deleted device and gives a moved one its new class's permissions. Works
 * after a control-plane restart too: nothing is remembered between the two requests.
 */
export class DeviceDisconnector {
  constructor(
    private readonly system: NatsConnection,
    private readonly logger: Logger,
  ) {}

  /**
   * Closes the device's connections now and, unless `once` (a class change: the agent connects
   * again by itself), once more after SECOND_SWEEP_MS.
   */
  async disconnect(deviceId: string, why: string, once = false): Promise<number> {
    const closed = await this.#sweep(deviceId, why);
    if (once) return closed;
    const timer = setTimeout(() => {
      if (this.system.isClosed()) return;
      this.#sweep(deviceId, why).catch((err: unknown) =>
        this.logger.error({ err, deviceId, why }, "cannot close the device's NATS connections"),
      );
    }, SECOND_SWEEP_MS);
    timer.unref();
    return closed;
  }

  async #sweep(deviceId: string, why: string): Promise<number> {
    const replies = await this.system.requestMany(
      '$SYS.REQ.SERVER.PING.CONNZ',
      JSON.stringify({ user: deviceId, acc: NATS_FLEET_ACCOUNT, auth: true, limit: 1024 }),
      { strategy: 'timer', maxWait: CONNZ_WAIT_MS },
    );
    const kicks: Promise<unknown>[] = [];
    for await (const reply of replies) {
      const connz = reply.json<Connz>();
      const server = connz.server?.id;
      if (!server) continue;
      for (const { cid } of connz.data?.connections ?? []) {
        kicks.push(
          this.system.request(`$SYS.REQ.SERVER.${server}.KICK`, JSON.stringify({ cid }), {
            timeout: 5_000,
          }),
        );
      }
    }
    await Promise.all(kicks);
    this.logger.info(
      { deviceId, connections: kicks.length, why },
      "closed the device's NATS connections",
    );
    return kicks.length;
  }
}
