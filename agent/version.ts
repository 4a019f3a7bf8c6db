import packageJson from './package.json' with { type: 'json' };

/** Sent at enrollment and exported as a metric label, so the fleet shows which agents run where. */
export const AGENT_VERSION: string = packageJson.version;
