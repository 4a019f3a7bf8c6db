// Health probe for the TypeScript services' containers (compose health checks, Kubernetes exec
// probes). Exits 0 when healthy, 1 otherwise, within a few seconds. Addresses come from the same
// environment variables the service reads, so a probe never disagrees with its service:
//
//   node deploy/docker/healthcheck.js grpc EDGEFORGE_CP_LISTEN
//       gRPC health service (grpc.health.v1) on the control plane's port: SERVING
//   node deploy/docker/healthcheck.js http EDGEFORGE_AGENT_METRICS
//       GET /metrics answers 200 (the agent's only endpoint)
//   node deploy/docker/healthcheck.js tcp EDGEFORGE_TEMPORAL_ADDRESS EDGEFORGE_NATS_URL
//       every address accepts TCP connections (the orchestrator worker has no endpoint of its own)
//
// A value is host:port or a URL (credentials in it are ignored). A wildcard listen address
// (0.0.0.0, ::) is probed on loopback.
import { connect } from 'node:net';
import { get } from 'node:http';

const TIMEOUT_MS = 3000;

function address(variable) {
  const value = process.env[variable];
  if (!value) throw new Error(`${variable} is not set`);
  const url = new URL(value.includes('://') ? value : `tcp://${value}`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port);
  if (!port) throw new Error(`${variable}=${value} has no port`);
  return { host: ['0.0.0.0', '::', ''].includes(host) ? '127.0.0.1' : host, port };
}

function tcp({ host, port }) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host, () => {
      socket.end();
      resolve();
    });
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error(`${host}:${port}: timeout`)));
    socket.on('error', reject);
  });
}

function http({ host, port }, path = '/metrics') {
  return new Promise((resolve, reject) => {
    const request = get({ host, port, path, timeout: TIMEOUT_MS }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`GET ${path}: ${res.statusCode}`));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${path}: timeout`)));
    request.on('error', reject);
  });
}

async function grpc({ host, port }) {
  // Loaded only here: the other probes stay fast and need nothing from node_modules.
  const { credentials, makeGenericClientConstructor } = await import('@grpc/grpc-js');
  const { service } = await import('grpc-health-check');
  const Health = makeGenericClientConstructor(service, 'Health');
  const client = new Health(`${host}:${port}`, credentials.createInsecure());
  const deadline = Date.now() + TIMEOUT_MS;
  const status = await new Promise((resolve, reject) =>
    client.check({ service: '' }, { deadline }, (err, res) => (err ? reject(err) : resolve(res))),
  );
  client.close();
  if (status.status !== 'SERVING') throw new Error(`health status ${status.status}`);
}

const [mode, ...variables] = process.argv.slice(2);
const probes = { tcp, http, grpc };
try {
  if (!(mode in probes) || variables.length === 0) {
    throw new Error('usage: healthcheck.js tcp|http|grpc VARIABLE...');
  }
  await Promise.all(variables.map((v) => probes[mode](address(v))));
  process.exit(0);
} catch (err) {
  console.error(`unhealthy: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
