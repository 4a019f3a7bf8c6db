import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { connectNats, parseNatsUrl } from '../../common/nats.js';
import { loadConnectionSettings } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { loadOrCreateToken } from '../../common/secrets.js';
import { defaultControlPlaneOptions, startControlPlane } from './control-plane.js';

const defaults = defaultControlPlaneOptions();
const EnvSchema = z.object({
  EDGEFORGE_CP_LISTEN: z.string().default(defaults.listen),
  EDGEFORGE_CP_METRICS_LISTEN: z.string().default(defaults.metricsListen),
  EDGEFORGE_CP_DATA_DIR: z.string().default(join(process.cwd(), '.edgeforge', 'control-plane')),
  EDGEFORGE_CP_ADVERTISED_NATS_URL: z.string().optional(),
  /** The system-account user's URL (deploy/nats/accounts.conf): closes revoked devices' connections. */
  EDGEFORGE_NATS_SYSTEM_URL: z.string({
    error: 'required: a system-account NATS URL (deploy/nats/accounts.conf, user "system")',
  }),
  /** File holding the seed (SA…) of the auth callout issuer named in the NATS configuration. */
  EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE: z.string({
    error:
      'required: devices get NATS identities of their own from the auth callout, signed with this seed',
  }),
  EDGEFORGE_ENROLLMENT_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  EDGEFORGE_ADMIN_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  EDGEFORGE_HEARTBEAT_INTERVAL_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(defaults.heartbeatIntervalSeconds),
  EDGEFORGE_CREDENTIAL_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .default(defaults.credentialTtlSeconds),
  EDGEFORGE_CP_TLS_CERT: z.string().optional(),
  EDGEFORGE_CP_TLS_KEY: z.string().optional(),
  EDGEFORGE_CP_TLS_CLIENT_CA: z.string().optional(),
});

/**
 * The control-plane process. Configuration comes from the environment (above, plus
 * EDGEFORGE_NATS_URL and EDGEFORGE_TEMPORAL_*); tokens not given are generated once into the data
 * directory.
 */
async function main(): Promise<void> {
  const settings = loadConnectionSettings();
  const parsed = EnvSchema.safeParse(process.env);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n'));
  }
  const env = parsed.data;
  if (Boolean(env.EDGEFORGE_CP_TLS_CERT) !== Boolean(env.EDGEFORGE_CP_TLS_KEY)) {
    throw new Error('set both EDGEFORGE_CP_TLS_CERT and EDGEFORGE_CP_TLS_KEY, or neither');
  }
  const log = createLogger('control-plane', settings.logLevel);
  const dataDir = env.EDGEFORGE_CP_DATA_DIR;
  const issuerSeed = await readFile(env.EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE, 'utf8').catch(
    (err: unknown) => {
      throw new Error(
        `cannot read EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE: ${(err as Error).message}`,
      );
    },
  );
  const nats = await connectNats(settings.natsUrl, { name: 'edgeforge-control-plane' });
  const system = await connectNats(env.EDGEFORGE_NATS_SYSTEM_URL, {
    name: 'edgeforge-control-plane-system',
  });
  const controlPlane = await startControlPlane({
    nats,
    dataDir,
    logger: log,
    listen: env.EDGEFORGE_CP_LISTEN,
    metricsListen: env.EDGEFORGE_CP_METRICS_LISTEN,
    // By default the servers the control plane uses, without its credentials.
    advertisedNatsUrl:
      env.EDGEFORGE_CP_ADVERTISED_NATS_URL ?? parseNatsUrl(settings.natsUrl).servers.join(','),
    natsAuth: { issuerSeed, system },
    enrollmentToken:
      env.EDGEFORGE_ENROLLMENT_TOKEN ??
      (await loadOrCreateToken(join(dataDir, 'enrollment-token'))),
    adminToken:
      env.EDGEFORGE_ADMIN_TOKEN ?? (await loadOrCreateToken(join(dataDir, 'admin-token'))),
    heartbeatIntervalSeconds: env.EDGEFORGE_HEARTBEAT_INTERVAL_SECONDS,
    credentialTtlSeconds: env.EDGEFORGE_CREDENTIAL_TTL_SECONDS,
    // EDGEFORGE_TEMPORAL_ADDRESS / EDGEFORGE_TEMPORAL_NAMESPACE; connected on the first rollout call.
    temporal: { address: settings.temporalAddress, namespace: settings.temporalNamespace },
    tls:
      env.EDGEFORGE_CP_TLS_CERT && env.EDGEFORGE_CP_TLS_KEY
        ? {
            certFile: env.EDGEFORGE_CP_TLS_CERT,
            keyFile: env.EDGEFORGE_CP_TLS_KEY,
            clientCaFile: env.EDGEFORGE_CP_TLS_CLIENT_CA,
          }
        : undefined,
  });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    controlPlane
      .stop()
      .then(() => Promise.all([nats.drain(), system.drain()]))
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'unclean shutdown');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(`control plane: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
