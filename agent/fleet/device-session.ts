import { isDeepStrictEqual } from 'node:util';
import { status } from '@grpc/grpc-js';
import { EdgeforgeError } from '../../common/errors.js';
import { profileToProto } from '../../common/fleet-api.js';
import { deriveHardwareClass, type HardwareProfile } from '../../common/hardware/index.js';
import type { Logger } from '../../common/logger.js';
import { redactUrl } from '../../common/nats.js';
import type {
  HeartbeatRequest,
  HeartbeatResponse,
  ReportBenchmarkRequest,
  ReportBenchmarkResponse,
  ReportStatusRequest,
} from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { loadOrCreateDeviceKey, type DeviceKey } from '../identity/device-key.js';
import type { DeviceIdentity, IdentityStore } from '../identity/identity-store.js';
import type { AgentMetrics } from '../metrics.js';
import { applyManifestKeyRotations, type PinUpdate } from '../heartbeat/manifest-key-pins.js';
import { AGENT_VERSION } from '../version.js';
import { FleetCallError, type FleetClient } from './fleet-client.js';

/** What a heartbeat reports besides the profile; serving fills in the model and latency later. */
export type HeartbeatReport = Pick<HeartbeatRequest, 'state' | 'activeModel' | 'inferenceLatency'>;

export interface DeviceSessionOptions {
  client: FleetClient;
  store: IdentityStore;
  enrollmentToken: string;
  deviceName: string;
  /** This device's profile as detected at start. */
  profile: HardwareProfile;
  metrics: AgentMetrics;
  logger: Logger;
}

export interface LastError {
  message: string;
  /** The gRPC status name, e.g. "UNAVAILABLE", when the call itself failed. */
  code?: string;
  at: Date;
}

export interface SessionStats {
  heartbeatsOk: number;
  heartbeatsFailed: number;
  enrollments: number;
  lastError?: LastError;
}

/**
 * The device's standing with the control plane: its identity (loaded or enrolled, and kept on
 * disk), and the Enroll and Heartbeat calls that keep it current. One call at a time; the
 * heartbeat loop decides when to call and what to do when a call fails.
 */
export class DeviceSession {
  readonly stats: SessionStats = { heartbeatsOk: 0, heartbeatsFailed: 0, enrollments: 0 };
  readonly #options: DeviceSessionOptions;
  readonly #onNatsUrl = new Set<(url: string) => void>();
  readonly #onClass = new Set<(hardwareClass: string) => void>();
  /** Key rotation refusals already logged: the control plane repeats its chain every beat. */
  readonly #refusedRotations = new Set<string>();
  #identity: DeviceIdentity | undefined;
  #logger: Logger;
  #deviceKey: DeviceKey | undefined;
  /** The last "waiting for an operator" refusal logged: the agent asks again and again. */
  #awaitingLogged: string | undefined;

  constructor(options: DeviceSessionOptions) {
    this.#options = options;
    this.#logger = options.logger;
  }

  /**
   * The key Enroll proves possession of: device-key.pem in the identity store's data dir, loaded
   * (or made, on the very first start) once. A key file that is not a key throws
   * DeviceKeyFileError: for a person to look at, never replaced.
   */
  async deviceKey(): Promise<DeviceKey> {
    if (this.#deviceKey) return this.#deviceKey;
    const { key, created, file } = await loadOrCreateDeviceKey(this.#options.store.dataDir);
    this.#deviceKey = key;
    this.#logger.info(
      { file, deviceKeyFingerprint: key.fingerprint },
      created ? 'made the device key (device key fingerprint)' : 'loaded the device key',
    );
    return key;
  }

  get identity(): DeviceIdentity | undefined {
    return this.#identity;
  }

  /** Logs with the deviceId once there is one. */
  get logger(): Logger {
    return this.#logger;
  }

  /** Takes the stored identity when it is this device name's; false means enroll first. */
  async resume(): Promise<boolean> {
    const { store, deviceName } = this.#options;
    // At start, so that a device gets its key on its first start and a broken key file stops it.
    await this.deviceKey();
    const stored = await store.load();
    if (stored === undefined) return false;
    if (stored.deviceName !== deviceName) {
      this.#logger.warn(
        { file: store.file, storedDeviceName: stored.deviceName, deviceName },
        'the stored identity is for another device name; enrolling under the new name',
      );
      return false;
    }
    this.#adopt(stored);
    this.#logger.info({ file: store.file }, 'resumed the stored device identity');
    return true;
  }

  /** Enrolls (again) under the device name and stores the identity before using it. */
  async enroll(signal?: AbortSignal): Promise<DeviceIdentity> {
    try {
      const identity = await this.#enroll(signal);
      this.#awaitingLogged = undefined;
      return identity;
    } catch (err) {
      this.#failed(err, signal);
      if (err instanceof FleetCallError && err.awaitingApproval) {
        if (err.message !== this.#awaitingLogged) {
          this.#awaitingLogged = err.message;
          this.#logger.warn(
            { error: err.message, deviceKeyFingerprint: this.#deviceKey?.fingerprint },
            'this device name is enrolled with another device key: waiting for an operator to ' +
              'approve this one (compare its fingerprint), asking again meanwhile',
          );
        }
      }
      throw err;
    }
  }

  async #enroll(signal: AbortSignal | undefined): Promise<DeviceIdentity> {
    const { client, store, enrollmentToken, deviceName, profile } = this.#options;
    const key = await this.deviceKey();
    const response = await client.enroll(
      {
        enrollmentToken,
        deviceName,
        profile: profileToProto(profile),
        agentVersion: AGENT_VERSION,
        // Signed for this call: a new time on every attempt.
        ...key.enrollProof({ deviceName, enrollmentToken }),
      },
      signal,
    );
    const missing = (['deviceId', 'deviceCredential', 'hardwareClass'] as const).filter(
      (field) => response[field] === '',
    );
    if (missing.length > 0) {
      throw new EdgeforgeError(
        `the control plane at ${client.address} enrolled this device without ${missing.join(', ')}; ` +
          'it does not speak the FleetService contract this agent expects',
      );
    }
    const identity: DeviceIdentity = {
      deviceId: response.deviceId,
      deviceName,
      credential: response.deviceCredential,
      credentialExpiresAt: response.credentialExpiresAt?.toISOString(),
      hardwareClass: response.hardwareClass,
      manifestPublicKey: response.manifestPublicKey.toString('base64'),
      // 0 from a control plane older than key rotation: its only key, version 1.
      manifestKeyVersion: response.manifestKeyVersion || 1,
      natsUrl: response.natsUrl,
      controlPlane: client.address,
      profile,
    };
    await store.save(identity);
    this.#adopt(identity);
    this.stats.enrollments += 1;
    this.#options.metrics.enrollments.inc();
    this.#logger.info(
      { hardwareClass: identity.hardwareClass, credentialExpiresAt: identity.credentialExpiresAt },
      'enrolled',
    );
    return identity;
  }

  /**
   * Sends one heartbeat with the current credential, and the profile when it differs from the
   * one the control plane last accepted; stores a renewed credential before returning.
   */
  async heartbeat(report: HeartbeatReport, signal?: AbortSignal): Promise<HeartbeatResponse> {
    const identity = this.#identity;
    if (identity === undefined) {
      throw new EdgeforgeError('heartbeat before enrollment: call resume() or enroll() first');
    }
    const { client, metrics, profile } = this.#options;
    const profileChanged = !isDeepStrictEqual(identity.profile, profile);
    const stopTimer = metrics.heartbeatDuration.startTimer();
    let response: HeartbeatResponse;
    try {
      response = await client.heartbeat(
        { ...report, profile: profileChanged ? profileToProto(profile) : undefined },
        identity.credential,
        signal,
      );
    } catch (err) {
      if (!signal?.aborted) {
        stopTimer();
        this.stats.heartbeatsFailed += 1;
        metrics.heartbeats.inc({ result: resultLabel(err) });
      }
      this.#failed(err, signal);
      throw err;
    }
    stopTimer();
    this.stats.heartbeatsOk += 1;
    metrics.heartbeats.inc({ result: 'ok' });
    try {
      await this.#applyHeartbeat(identity, response, profileChanged);
    } catch (err) {
      this.#failed(err, signal);
      throw err;
    }
    return response;
  }

  /** Reports an on-device benchmark with the current credential. */
  reportBenchmark(
    request: ReportBenchmarkRequest,
    signal?: AbortSignal,
  ): Promise<ReportBenchmarkResponse> {
    return this.#options.client.reportBenchmark(request, this.#credential(), signal);
  }

  /** Reports an activation, health check, rollback or refusal with the current credential. */
  async reportStatus(request: ReportStatusRequest, signal?: AbortSignal): Promise<void> {
    await this.#options.client.reportStatus(request, this.#credential(), signal);
  }

  #credential(): string {
    if (this.#identity === undefined) {
      throw new EdgeforgeError('report before enrollment: call resume() or enroll() first');
    }
    return this.#identity.credential;
  }

  #failed(err: unknown, signal: AbortSignal | undefined): void {
    // A call cancelled by stop() says nothing about the control plane.
    if (signal?.aborted) return;
    const code = err instanceof FleetCallError ? status[err.code] : undefined;
    this.stats.lastError = { message: (err as Error).message, code, at: new Date() };
  }

  async #applyHeartbeat(
    identity: DeviceIdentity,
    response: HeartbeatResponse,
    profileAccepted: boolean,
  ): Promise<void> {
    const natsMoved = response.natsUrl !== '' && response.natsUrl !== identity.natsUrl;
    const pins = this.#followKeyRotations(identity, response);
    if (response.renewedCredential === '' && !profileAccepted && !natsMoved && !pins.changed) {
      return;
    }
    const updated = { ...pins.identity };
    if (natsMoved) updated.natsUrl = response.natsUrl;
    if (response.renewedCredential !== '') {
      updated.credential = response.renewedCredential;
      updated.credentialExpiresAt = response.renewedCredentialExpiresAt?.toISOString();
    }
    if (profileAccepted) {
      updated.profile = this.#options.profile;
      // HeartbeatResponse carries no class; the control plane derives it with the same function.
      updated.hardwareClass = deriveHardwareClass(updated.profile).key;
    }
    await this.#options.store.save(updated);
    this.#adopt(updated);
    for (const rotation of pins.accepted) {
      this.#logger.info(
        {
          manifestKeyVersion: rotation.version,
          previousKeyValidUntil: rotation.previousKeyValidUntil,
        },
        'pinned the rotated manifest signing key',
      );
    }
    if (response.renewedCredential !== '') {
      this.#logger.info(
        { credentialExpiresAt: updated.credentialExpiresAt },
        'stored the renewed credential',
      );
    }
    if (profileAccepted) {
      this.#logger.info(
        { hardwareClass: updated.hardwareClass },
        'the control plane accepted the changed hardware profile',
      );
      if (updated.hardwareClass !== identity.hardwareClass) {
        for (const listener of this.#onClass) listener(updated.hardwareClass);
      }
    }
    if (natsMoved) {
      this.#logger.info(
        { natsUrl: redactUrl(updated.natsUrl) },
        'the control plane advertises another NATS URL; stored it',
      );
      for (const listener of this.#onNatsUrl) listener(updated.natsUrl);
    }
  }

  /**
   * The pins after the rotation chain a heartbeat carried (agent/heartbeat/manifest-key-pins.ts);
   * a refused statement is logged once with the device id, and the pin stays.
   */
  #followKeyRotations(identity: DeviceIdentity, response: HeartbeatResponse): PinUpdate {
    const pins = applyManifestKeyRotations(identity, response.manifestKeyRotations);
    const refused = pins.refused;
    if (refused && !this.#refusedRotations.has(refused.message)) {
      this.#refusedRotations.add(refused.message);
      this.#logger.error(
        {
          deviceId: identity.deviceId,
          reason: refused.reason,
          keyVersion: refused.version,
          pinnedKeyVersion: pins.identity.manifestKeyVersion ?? 1,
          error: refused.message,
        },
        'refused a manifest key rotation: it does not follow from the pinned key; keeping the pin',
      );
    }
    return pins;
  }

  /** Calls `listener` with the new class when an accepted profile puts the device in another. */
  onHardwareClassChange(listener: (hardwareClass: string) => void): () => void {
    this.#onClass.add(listener);
    return () => this.#onClass.delete(listener);
  }

  /** Calls `listener` with the new URL whenever the control plane advertises another NATS URL. */
  onNatsUrlChange(listener: (url: string) => void): () => void {
    this.#onNatsUrl.add(listener);
    return () => this.#onNatsUrl.delete(listener);
  }

  #adopt(identity: DeviceIdentity): void {
    if (identity.deviceId !== this.#identity?.deviceId) {
      this.#logger = this.#options.logger.child({ deviceId: identity.deviceId });
    }
    this.#identity = identity;
    this.#options.metrics.setDevice(identity.deviceId, identity.hardwareClass);
  }
}

function resultLabel(err: unknown): string {
  return err instanceof FleetCallError ? (status[err.code] ?? 'unknown').toLowerCase() : 'error';
}
