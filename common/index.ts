/**
 * The small module that services, agent and workflows share. Workflow code must import the pure
 * files directly (`names.js`, `temporal-api.js`), never this index: it pulls in Node-only code.
 */
export * from './names.js';
export * from './temporal-api.js';
export * from './errors.js';
export * from './config.js';
export * from './nats.js';
export * from './logger.js';
export * from './fleet-api.js';
export * from './hardware/index.js';
export * from './metrics-server.js';
export * from './grpc-unary.js';
export * from './manifest.js';
export * from './desired-state.js';
