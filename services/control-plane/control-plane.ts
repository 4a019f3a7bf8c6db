import { readFile } from 'node:fs/promises';
import { Server, ServerCredentials, type ServerOptions } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES } from '../../common/fleet-api.js';
import { serveMetrics, type MetricsServer } from '../../common/metrics-server.js';
import { parseNatsUrl, type NatsConnection } from '../../common/nats.js';
import { FleetServiceService } from '../../proto/gen/edgeforge/v1/fleet.pb.js';
import { AdminServiceService } from '../../proto/gen/edgeforge/v1/admin.pb.js';
import { FleetKeys } from './auth/fleet-keys.js';
import { createAdminService } from './grpc/admin-service.js';
import { createFleetService } from './grpc/fleet-service.js';
import { withRequestDecoding } from './grpc/request-decoding.js';
import { createControlPlaneMetrics } from './metrics.js';
import { NatsAuthCallout, NatsAuthConfigError } from './nats-auth/auth-callout.js';
import { DeviceDisconnector, mustDisconnect } from './nats-auth/disconnect.js';
import { NatsHealth } from './nats-health.js';
import { DeviceRegistry } from './registry/device-registry.js';
import { CensusPublisher } from './rollouts/census-publisher.js';
import { RolloutRecords } from './rollouts/rollout-records.js';
import { RolloutSignals } from './rollouts/rollout-signals.js';
import { RolloutTemporal, type TemporalSettings } from './rollouts/temporal-connection.js';
import { connectivityThresholds, revokedCallRefusal } from './registry/device-record.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (mTLS). */
  clientCaFile?: string;
}

export interface ControlPlaneOptions {
  nats: NatsConnection;
  /**
   * Holds the credential key and the manifest signing key; created on first start, kept across
   * restarts (agents' credentials and pinned keys depend on them).
   */
  dataDir: string;
  enrollmentToken: string;
  adminToken: string;
  logger: Logger;
  /** gRPC listen address; port 0 picks a free one. */
  listen: string;
  /** /metrics listen address; port 0 picks a free one. */
  metricsListen: string;
  /**
   * NATS URL handed to agents at enrollment: servers only, never credentials (each device
   * authenticates as itself with its fleet credential, through `natsAuth`).
   */
  advertisedNatsUrl: string;
  /**
   * How devices get NATS identities of their own (required: without it a device could only get
   * a shared one). The server's auth_callout `issuer` is the public key of `issuerSeed`;
   * `system` is a connection of a system-account user, used to close the connections of a
   * device that is revoked, deleted or moved to another class.
   */
  natsAuth: { issuerSeed: string; system: NatsConnection };
  heartbeatIntervalSeconds: number;
  credentialTtlSeconds: number;
  tls?: TlsFiles;
  /**
   * Temporal, for the rollout calls and the signals that forward device reports to rollouts.
   * Connected on first use; without it the fleet API works and rollout calls fail with
   * FAILED_PRECONDITION.
   */
  temporal?: TemporalSettings;
  /** How often the census of classes under rollout is brought up to date; default 1 s. */
  censusIntervalMs?: number;
  /** How long connections may take or sit idle; see connectionTimeouts(). Tests shorten them. */
  connectionTimeouts?: Partial<ConnectionTimeouts>;
}

/** How long the gRPC server holds a connection that does nothing useful. */
export interface ConnectionTimeouts {
  /** A TLS handshake not done by then is dropped (Node's own default is 120 s). */
  tlsHandshakeMs: number;
  /** A connection without a call for this long gets a GOAWAY (clients reconnect on their next). */
  idleMs: number;
  /** Every connection gets a GOAWAY at this age (±10%), and is cut `maxAgeGraceMs` after. */
  maxAgeMs: number;
  maxAgeGraceMs: number;
  /** A ping every `keepaliveTimeMs`; no answer within `keepaliveTimeoutMs` drops the connection. */
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
}

/**
 * Chosen for fleets of slow devices on poor links (a Pi on a cellular modem, ~1-2 s round trips,
 * lost packets), while a client that opens connections and then stalls (half-open TCP, a TLS
 * handshake never finished, an HTTP/2 stream never completed) cannot hold them forever:
 * - TLS handshake 30 s: two round trips, a few KiB of certificates and one signature check take a
 *   slow ARM core on such a link a few seconds with a retransmit or two; 30 s is several times
 *   that, and a quarter of Node's 120 s default.
 * - idle 5 min, or 3 heartbeat intervals if longer: an agent beats every interval on one
 *   long-lived channel, so only connections with no agent behind them reach it (a connection
 *   that never sends a call included), and a GOAWAY to an idle client costs it one reconnect.
 * - keepalive ping each minute, 20 s to answer: a device that vanished (power, network) is
 *   noticed within 80 s, and a peer whose HTTP/2 stack never answers is dropped then too.
 * - age 1 h, then 2 min of grace: bounds the one case the others miss, a peer that answers pings
 *   but keeps a call open without finishing its request. One TLS handshake per device per hour is
 *   nothing; the grace lets a 256 KiB request finish at GPRS speed (~40 kbit/s, about a minute).
 */
export function connectionTimeouts(
  heartbeatIntervalSeconds: number,
  overrides: Partial<ConnectionTimeouts> = {},
): ConnectionTimeouts {
  return {
    tlsHandshakeMs: 30_000,
    idleMs: Math.max(5 * 60_000, 3 * heartbeatIntervalSeconds * 1000),
    maxAgeMs: 60 * 60_000,
    maxAgeGraceMs: 2 * 60_000,
    keepaliveTimeMs: 60_000,
    keepaliveTimeoutMs: 20_000,
    ...overrides,
  };
}

function grpcServerOptions(timeouts: ConnectionTimeouts): ServerOptions {
  return {
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
    'grpc.max_send_message_length': MAX_RESPONSE_BYTES,
    'grpc.max_connection_idle_ms': timeouts.idleMs,
    'grpc.max_connection_age_ms': timeouts.maxAgeMs,
    'grpc.max_connection_age_grace_ms': timeouts.maxAgeGraceMs,
    // Agents keep one long-lived channel each; ping them so dead ones are noticed.
    'grpc.keepalive_time_ms': timeouts.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': timeouts.keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
  };
}

export function defaultControlPlaneOptions(): Pick<
  ControlPlaneOptions,
  'listen' | 'metricsListen' | 'heartbeatIntervalSeconds' | 'credentialTtlSeconds'
> {
  return {
    listen: '127.0.0.1:7443',
    metricsListen: '127.0.0.1:9464',
    heartbeatIntervalSeconds: 10,
    credentialTtlSeconds: 7 * 24 * 3600,
  };
}

export interface RunningControlPlane {
  /** host:port the gRPC server listens on. */
  address: string;
  metricsUrl: string;
  registry: DeviceRegistry;
  /** Stops accepting calls, finishes running ones (up to `graceMs`), then closes everything. */
  stop(graceMs?: number): Promise<void>;
}

const SERVICES = ['', 'edgeforge.v1.FleetService', 'edgeforge.v1.AdminService'];

/** The control plane: gRPC FleetService + AdminService + health, the registry, /metrics. */
export async function startControlPlane(
  options: ControlPlaneOptions,
): Promise<RunningControlPlane> {
  const log = options.logger;
  if (parseNatsUrl(options.advertisedNatsUrl).user !== undefined) {
    throw new NatsAuthConfigError(
      'the NATS URL advertised to devices carries credentials: every device would connect with ' +
        'them. Advertise the servers only (EDGEFORGE_CP_ADVERTISED_NATS_URL=nats://host:4222); ' +
        'devices authenticate with their own credential through the auth callout.',
    );
  }
  const thresholds = connectivityThresholds(options.heartbeatIntervalSeconds * 1000);
  // Versioned credential and manifest keys (auth/fleet-keys.ts); rotated by AdminService.
  const keys = await FleetKeys.open({
    dataDir: options.dataDir,
    credentialTtlSeconds: options.credentialTtlSeconds,
    log,
  });
  const authority = keys.authority;

  const metrics = createControlPlaneMetrics();
  const disconnector = new DeviceDisconnector(options.natsAuth.system, log);
  const registry = await DeviceRegistry.open(options.nats, {
    onConflict: () => metrics.registryConflicts.inc(),
    // A revoked or deleted device loses NATS at once; a moved one reconnects with its new rights.
    onChange: (deviceId, before, after) => {
      if (!mustDisconnect(before, after)) return;
      const why = !after
        ? 'deleted'
        : after.revokedAt
          ? 'revoked'
          : after.credentialsValidAfter !== before?.credentialsValidAfter
            ? 'device key replaced'
            : 'hardware class changed';
      const moved = why === 'hardware class changed';
      disconnector.disconnect(deviceId, why, moved).catch((err: unknown) => {
        log.error({ err, deviceId, why }, "cannot close the device's NATS connections");
      });
    },
  });
  const natsAuth = new NatsAuthCallout({
    nats: options.nats,
    issuerSeed: options.natsAuth.issuerSeed,
    authority,
    record: (deviceId) => registry.get(deviceId),
    logger: log,
    onDecision: (outcome) => metrics.natsAuthorizations.inc({ outcome }),
  });
  natsAuth.start();
  metrics.trackFleet(registry, thresholds);
  await metrics.rollouts.watch(options.nats, log);
  // Set once the health service exists; NATS status events may come before.
  let setServing: (serving: boolean) => void = () => {};
  const natsHealth = new NatsHealth(options.nats, log, (serving) => setServing(serving));
  const ctx = {
    fleetUnavailable: () => natsHealth.problem(),
    authority,
    adminToken: options.adminToken,
    metrics,
    log,
    // A revoked device's still-valid credential opens nothing.
    deviceRefusal: (deviceId: string) => {
      const record = registry.get(deviceId);
      return record && revokedCallRefusal(record);
    },
  };
  const temporal = new RolloutTemporal(options.temporal, log);
  const rolloutSignals = new RolloutSignals(temporal, log);
  const rolloutRecords = new RolloutRecords(options.nats, log);
  const census = new CensusPublisher({
    nats: options.nats,
    records: () => registry.records(),
    thresholds,
    intervalMs: options.censusIntervalMs ?? 1_000,
    log,
    onRound: (seconds) => metrics.censusRoundSeconds.observe(seconds),
  });
  census.start();

  const timeouts = connectionTimeouts(options.heartbeatIntervalSeconds, options.connectionTimeouts);
  const server = new Server(grpcServerOptions(timeouts));
  const health = new HealthImplementation(Object.fromEntries(SERVICES.map((s) => [s, 'SERVING'])));
  health.addToServer(server);
  setServing = (serving) => {
    for (const s of SERVICES) health.setStatus(s, serving ? 'SERVING' : 'NOT_SERVING');
  };
  if (natsHealth.problem()) setServing(false);
  // Requests that do not decode are INVALID_ARGUMENT naming the field, not INTERNAL.
  server.addService(
    withRequestDecoding(FleetServiceService),
    await createFleetService(ctx, registry, options.nats, {
      enrollmentToken: options.enrollmentToken,
      heartbeatIntervalSeconds: options.heartbeatIntervalSeconds,
      advertisedNatsUrl: options.advertisedNatsUrl,
      manifestKeys: keys,
      rolloutSignals,
    }),
  );
  server.addService(
    withRequestDecoding(AdminServiceService),
    createAdminService(
      ctx,
      registry,
      thresholds,
      { temporal, records: rolloutRecords, natsProblem: () => natsHealth.problem() },
      keys,
    ),
  );

  const credentials = options.tls
    ? await tlsCredentials(options.tls, timeouts.tlsHandshakeMs)
    : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.listen, credentials, (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  const host = options.listen.slice(0, options.listen.lastIndexOf(':'));
  const address = `${host}:${port}`;
  let metricsServer: MetricsServer;
  try {
    metricsServer = await serveMetrics(metrics.register, options.metricsListen);
  } catch (err) {
    server.forceShutdown();
    await census.stop();
    await natsAuth.stop();
    await metrics.rollouts.close();
    await registry.close();
    throw err;
  }
  log.info(
    { address, metrics: metricsServer.url, tls: Boolean(options.tls), devices: registry.size },
    'control plane ready',
  );

  return {
    address,
    metricsUrl: metricsServer.url,
    registry,
    async stop(graceMs = 10_000) {
      for (const s of SERVICES) health.setStatus(s, 'NOT_SERVING');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn('calls still running after the grace period: cancelling them');
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await metricsServer.close();
      await rolloutSignals.drain();
      await census.stop();
      await natsAuth.stop();
      await temporal.close();
      await metrics.rollouts.close();
      await registry.close();
      log.info('control plane stopped');
    },
  };
}

async function tlsCredentials(
  tls: TlsFiles,
  handshakeTimeoutMs: number,
): Promise<ServerCredentials> {
  const [cert, key, ca] = await Promise.all([
    readFile(tls.certFile),
    readFile(tls.keyFile),
    tls.clientCaFile ? readFile(tls.clientCaFile) : Promise.resolve(null),
  ]);
  const credentials = ServerCredentials.createSsl(
    ca,
    [{ cert_chain: cert, private_key: key }],
    ca !== null,
  );
  // grpc-js has no server option for the TLS handshake timeout, but it builds its
  // http2.createSecureServer options from these (Node's tls.Server takes `handshakeTimeout`).
  const constructorOptions = credentials._getConstructorOptions.bind(credentials);
  credentials._getConstructorOptions = () => {
    const secure = constructorOptions();
    return secure && { ...secure, handshakeTimeout: handshakeTimeoutMs };
  };
  return credentials;
}
