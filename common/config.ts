import { z } from 'zod';

/** JetStream allows at most five replicas of a stream. */
export const NATS_REPLICAS_MAX = 5;

/**
 * Environment variables are read here and nowhere else. Defaults point at the embedded stack
 * (`edgeforge up`); set them to use an existing Temporal cluster or NATS cluster instead.
 */
const EnvSchema = z.object({
  EDGEFORGE_TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port, e.g. temporal.example.com:7233')
    .default('127.0.0.1:7233'),
  EDGEFORGE_TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  EDGEFORGE_NATS_URL: z
    .string()
    .regex(
      /^(nats|tls|wss?):\/\/\S+$/,
      'expected a URL such as nats://127.0.0.1:4222, or several servers of one cluster separated by commas',
    )
    .default('nats://127.0.0.1:4222'),
  EDGEFORGE_NATS_REPLICAS: natsReplicasSchema(),
  /** The fleet's manifest signing key (orchestrator; the control plane keeps it in its data dir). */
  EDGEFORGE_MANIFEST_KEY_FILE: z.string().min(1).optional(),
  EDGEFORGE_LOG_LEVEL: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info'),
});

function natsReplicasSchema() {
  return z
    .string()
    .trim()
    .regex(
      new RegExp(`^[1-${NATS_REPLICAS_MAX}]$`),
      `expected a whole number from 1 to ${NATS_REPLICAS_MAX}: how many JetStream servers keep ` +
        'a copy of every bucket (1 for a single nats-server, 3 for a three-node cluster)',
    )
    .default('1')
    .transform(Number);
}

export type EdgeforgeEnv = z.infer<typeof EnvSchema>;

export interface ConnectionSettings {
  temporalAddress: string;
  temporalNamespace: string;
  natsUrl: string;
  /** Replicas of every KV bucket and object store the services create (EDGEFORGE_NATS_REPLICAS). */
  natsReplicas: number;
  manifestKeyFile: string | undefined;
  logLevel: EdgeforgeEnv['EDGEFORGE_LOG_LEVEL'];
}

/** Reads and validates the environment; a bad value names the variable and what it expects. */
export function loadConnectionSettings(env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid environment:\n  ${problems.join('\n  ')}`);
  }
  return {
    temporalAddress: parsed.data.EDGEFORGE_TEMPORAL_ADDRESS,
    temporalNamespace: parsed.data.EDGEFORGE_TEMPORAL_NAMESPACE,
    natsUrl: parsed.data.EDGEFORGE_NATS_URL,
    natsReplicas: parsed.data.EDGEFORGE_NATS_REPLICAS,
    manifestKeyFile: parsed.data.EDGEFORGE_MANIFEST_KEY_FILE,
    logLevel: parsed.data.EDGEFORGE_LOG_LEVEL,
  };
}

/**
 * EDGEFORGE_NATS_REPLICAS alone: how many JetStream servers keep a copy of each bucket the
 * services create (1, the default, for a single nats-server; 3 for a three-node cluster). It
 * applies when a bucket is created; an existing bucket keeps its replica count.
 */
export function loadNatsReplicas(env: NodeJS.ProcessEnv = process.env): number {
  const parsed = natsReplicasSchema().safeParse(env.EDGEFORGE_NATS_REPLICAS);
  if (!parsed.success) {
    throw new Error(
      `invalid environment:\n  EDGEFORGE_NATS_REPLICAS: ${parsed.error.issues[0]!.message} ` +
        `(it is ${JSON.stringify(env.EDGEFORGE_NATS_REPLICAS)})`,
    );
  }
  return parsed.data;
}
