import {
  decode,
  encodeAuthorizationResponse,
  encodeUser,
  type AuthorizationRequest,
} from '@nats-io/jwt';
import { fromSeed, type KeyPair } from '@nats-io/nkeys';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { EdgeforgeError } from '../../../common/errors.js';
import type { Logger } from '../../../common/logger.js';
import { NATS_AUTH_CALLOUT_SUBJECT } from '../../../common/names.js';
import type { CredentialAuthority } from '../auth/credentials.js';
import { revokedCallRefusal, type DeviceRecord } from '../registry/device-record.js';
import { staleCredentialRefusal } from '../registry/key-decision.js';
import { devicePermissions } from './device-permissions.js';

/** The NATS account devices (and the central services) live in: deploy/nats/*.conf. */
export const NATS_FLEET_ACCOUNT = 'EDGEFORGE';

/**
 * Subscriptions one device connection may hold: its inbox, its two desired-state keys and a
 * download's consumer, with room for reconnects; a compromised device cannot grow the server's
 * interest graph beyond this.
 */
const DEVICE_MAX_SUBSCRIPTIONS = 32;
/** Devices publish only small JetStream API requests; models flow the other way. */
const DEVICE_MAX_PAYLOAD_BYTES = 64 * 1024;

export class NatsAuthConfigError extends EdgeforgeError {
  override name = 'NatsAuthConfigError';
}

export interface NatsAuthCalloutOptions {
  /** A connection of an `auth_users` user of the fleet account (the control plane's own). */
  nats: NatsConnection;
  /**
   * Seed of the account nkey (`SA…`) whose public key is the `issuer` of the server's
   * auth_callout block: it signs every device's user JWT.
   */
  issuerSeed: string;
  authority: CredentialAuthority;
  record: (deviceId: string) => DeviceRecord | undefined;
  logger: Logger;
  onDecision?: (outcome: 'allowed' | 'refused') => void;
}

/**
 * Loads the issuer key, refusing anything that is not an account seed (a user or operator seed
 * would sign JWTs the server rejects: every device would be locked out, silently).
 */
export function issuerKeyPair(seed: string): KeyPair {
  let kp: KeyPair;
  try {
    kp = fromSeed(new TextEncoder().encode(seed.trim()));
  } catch (err) {
    throw new NatsAuthConfigError(
      `the NATS auth callout issuer seed does not parse (${(err as Error).message}): ` +
        'it must be an account nkey seed, starting with SA (`edgeforge up` makes one)',
      { cause: err },
    );
  }
  if (!kp.getPublicKey().startsWith('A')) {
    throw new NatsAuthConfigError(
      'the NATS auth callout issuer seed is not an account key (its public key must start with A)',
    );
  }
  return kp;
}

/**
 * The control plane's answer to nats-server's auth callout: a device connects presenting its
 * fleet credential as its token; the server asks here; the answer is a user JWT, signed by the
 * issuer account key, with that device's permissions only (devicePermissions) and the
 * credential's expiry, so a device's NATS identity is its fleet identity and lapses with it.
 * Anyone else (no token, a forged or expired credential, a revoked or deleted device) is refused
 * with the reason in the server's log. Several control planes may answer: a queue group.
 */
export class NatsAuthCallout {
  readonly #o: NatsAuthCalloutOptions;
  readonly #issuer: KeyPair;
  #sub: Subscription | undefined;

  constructor(options: NatsAuthCalloutOptions) {
    this.#o = options;
    this.#issuer = issuerKeyPair(options.issuerSeed);
  }

  get issuerPublicKey(): string {
    return this.#issuer.getPublicKey();
  }

  start(): void {
    this.#sub = this.#o.nats.subscribe(NATS_AUTH_CALLOUT_SUBJECT, {
      queue: 'edgeforge-nats-auth',
      callback: (err, msg) => {
        if (err) {
          this.#o.logger.error({ err }, 'the NATS auth callout subscription failed');
          return;
        }
        void this.#answer(msg).catch((error: unknown) =>
          this.#o.logger.error({ err: error }, 'cannot answer a NATS authorization request'),
        );
      },
    });
  }

  async stop(): Promise<void> {
    await this.#sub?.drain();
  }

  async #answer(msg: Msg): Promise<void> {
    let request: AuthorizationRequest;
    try {
      const claims = decode<AuthorizationRequest>(msg.string()).nats;
      if (
        !claims.user_nkey ||
        !claims.server_id?.id ||
        !claims.connect_opts ||
        !claims.client_info
      ) {
        throw new Error('it lacks user_nkey, server_id, connect_opts or client_info');
      }
      request = claims as AuthorizationRequest;
    } catch (err) {
      this.#o.logger.warn({ err }, 'ignoring a NATS authorization request that does not decode');
      return;
    }
    const decision = await this.#decide(request);
    this.#o.onDecision?.(decision.jwt ? 'allowed' : 'refused');
    const response = await encodeAuthorizationResponse(
      request.user_nkey,
      request.server_id.id,
      this.#issuer,
      decision,
      {},
    );
    msg.respond(response);
  }

  async #decide(request: AuthorizationRequest): Promise<{ jwt?: string; error?: string }> {
    const token = request.connect_opts.auth_token;
    const client = { host: request.client_info.host, cid: request.client_info.id };
    const refuse = (error: string, deviceId?: string) => {
      this.#o.logger.warn({ ...client, deviceId, reason: error }, 'NATS connection refused');
      return { error };
    };
    if (!token) {
      return refuse('no device credential: connect with the credential from enrollment as token');
    }
    let deviceId: string;
    let issuedAt: number;
    let expiresAt: number;
    try {
      ({ deviceId, issuedAt, expiresAt } = this.#o.authority.verify(token));
    } catch (err) {
      return refuse((err as Error).message);
    }
    const record = this.#o.record(deviceId);
    if (!record) return refuse(`device ${deviceId} is not in the fleet registry`, deviceId);
    const refusal = revokedCallRefusal(record) ?? staleCredentialRefusal(record, issuedAt);
    if (refusal) return refuse(refusal, deviceId);
    const permissions = devicePermissions(deviceId, record.hardwareClass);
    const jwt = await encodeUser(
      deviceId,
      request.user_nkey,
      this.#issuer,
      {
        pub: { allow: permissions.publish },
        sub: { allow: permissions.subscribe },
        subs: DEVICE_MAX_SUBSCRIPTIONS,
        payload: DEVICE_MAX_PAYLOAD_BYTES,
        data: -1,
      },
      { aud: NATS_FLEET_ACCOUNT, exp: expiresAt },
    );
    this.#o.logger.debug(
      { ...client, deviceId, hardwareClass: record.hardwareClass },
      'NATS connection allowed',
    );
    return { jwt };
  }
}
