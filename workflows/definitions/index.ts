// Every workflow the orchestrator worker registers. Deterministic code only (see eslint.config.js).
export { smokeWorkflow } from './smoke.js';
export { rolloutWorkflow } from './rollout.js';
export { classRolloutWorkflow } from './class-rollout.js';
