import { NativeConnection } from '@temporalio/worker';
import { connectNats } from '../common/nats.js';
import { loadConnectionSettings } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { ServiceUnreachableError } from '../common/errors.js';
import { loadOrCreateManifestKey } from '../common/secrets.js';
import { currentManifestSigningKey } from '../common/manifest-key-set.js';
import { createOrchestratorWorker } from './worker.js';
import { serveMetrics } from '../common/metrics-server.js';
import {
  orchestratorHealth,
  orchestratorMetrics,
  orchestratorMetricsListen,
} from './orchestrator-metrics.js';

/**
 * Runs the orchestrator worker against EDGEFORGE_TEMPORAL_ADDRESS and EDGEFORGE_NATS_URL. It signs
 * model manifests with the fleet key in EDGEFORGE_MANIFEST_KEY_FILE, the same file the control
 * plane hands the public half of to agents (created by whichever of the two starts first). After
 * a key rotation it signs with the key set's current key (manifest-keys.json beside that file).
 */
async function main(): Promise<void> {
  const settings = loadConnectionSettings();
  const log = createLogger('orchestrator', settings.logLevel);
  const nats = await connectNats(settings.natsUrl, { name: 'edgeforge-orchestrator' });
  const connection = await NativeConnection.connect({ address: settings.temporalAddress }).catch(
    (cause: unknown) => {
      throw new ServiceUnreachableError(
        `cannot reach Temporal at ${settings.temporalAddress}. Start the embedded stack with ` +
          '`edgeforge up`, or set EDGEFORGE_TEMPORAL_ADDRESS to your Temporal frontend.',
        { cause },
      );
    },
  );
  const { manifestKeyFile } = settings;
  if (!manifestKeyFile) {
    throw new Error(
      "EDGEFORGE_MANIFEST_KEY_FILE is not set: point it at the control plane's " +
        '<data dir>/manifest-signing.pem (in Kubernetes, mount the same Secret into both)',
    );
  }
  const worker = await createOrchestratorWorker({
    connection,
    nats,
    // Created here when the orchestrator starts first; then the current key of the key set
    // beside it (or the pem alone), read again whenever either file changes: key rotation.
    manifestKey: await loadOrCreateManifestKey(manifestKeyFile).then(() =>
      currentManifestSigningKey(manifestKeyFile),
    ),
    namespace: settings.temporalNamespace,
  });
  const metrics = await serveMetrics(orchestratorMetrics(worker), orchestratorMetricsListen(), {
    health: () => orchestratorHealth(worker),
  });
  // Worker.run() handles SIGINT/SIGTERM itself: it stops polling and drains running tasks.
  log.info(
    { taskQueue: worker.options.taskQueue, metrics: metrics.url },
    'orchestrator worker ready',
  );
  try {
    await worker.run();
  } finally {
    await metrics.close();
  }
  await nats.drain();
  await connection.close();
  log.info('orchestrator worker stopped');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
  process.exit(1);
});
