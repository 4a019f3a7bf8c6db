import { z } from 'zod';

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
    .regex(/^(nats|tls|wss?):\/\/\S+$/, 'expected a URL such as nats://127.0.0.1:4222')
    .default('nats://127.0.0.1:4222'),
  /** The fleet's manifest signing key (orchestrator; the control plane keeps it in its data dir). */
  EDGEFORGE_MANIFEST_KEY_FILE: z.string().min(1).optional(),
  EDGEFORGE_LOG_LEVEL: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info'),
});

export type EdgeforgeEnv = z.infer<typeof EnvSchema>;

export interface ConnectionSettings {
  temporalAddress: string;
  temporalNamespace: string;
  natsUrl: string;
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
    manifestKeyFile: parsed.data.EDGEFORGE_MANIFEST_KEY_FILE,
    logLevel: parsed.data.EDGEFORGE_LOG_LEVEL,
  };
}
