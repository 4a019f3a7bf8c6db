// Starts a TypeScript module in a worker thread: tsx's loader, registered in the main thread by
// `tsx`, does not reach workers, so each registers it before importing its module.
// Usage: new Worker(new URL('./ts-worker.mjs', import.meta.url), { argv: [moduleUrl], ... })
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
await import(process.argv[2]);
