# syntax=docker/dockerfile:1.7
# One image for every TypeScript process: the control plane, the orchestrator worker and the edge
# agent (and the `edgeforge` CLI). They differ only in the command, which is the file tsx runs:
#   services/control-plane/main.ts · workflows/main.ts · agent/main.ts
# Build from the repository root (agents run on ARM boards too, so build both architectures):
#   docker buildx build -f deploy/docker/node.Dockerfile --platform linux/amd64,linux/arm64 \
#     -t edgeforge/edgeforge:0.1.0 .

FROM node:20-bookworm-slim AS deps
WORKDIR /app
# Only the manifests first, so that a source change does not reinstall dependencies.
# --ignore-scripts repeats what .npmrc says: onnxruntime-node's install script would download CUDA
# binaries; its CPU binaries ship in the package, and nothing else we use needs a script.
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --omit=dev

FROM node:20-bookworm-slim
# tini as PID 1: forwards SIGTERM to node (the services drain on it) and reaps zombies.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# No build step: tsx runs the sources (docs/architecture.md), so the image holds them as they are.
# tsconfig.json tells tsx how to resolve them; package.json is read for the agent's version.
COPY package.json package-lock.json tsconfig.json ./
COPY proto/gen ./proto/gen
COPY common ./common
COPY services/control-plane ./services/control-plane
COPY services/stack ./services/stack
COPY workflows ./workflows
COPY agent ./agent
COPY cli ./cli
# Probes for compose health checks and Kubernetes exec probes (the services have no HTTP health
# endpoint of their own, apart from the control plane's gRPC health service).
COPY deploy/docker/healthcheck.js ./deploy/docker/healthcheck.js
# State directories, owned by the runtime user: a named volume mounted here starts with this
# ownership, so the services can write their keys and identities without running as root.
RUN mkdir -p /var/lib/edgeforge/control-plane /var/lib/edgeforge/agent \
  && chown -R 1000:1000 /var/lib/edgeforge \
  && chmod 0700 /var/lib/edgeforge/control-plane /var/lib/edgeforge/agent
ENV EDGEFORGE_CP_DATA_DIR=/var/lib/edgeforge/control-plane \
    EDGEFORGE_AGENT_DATA_DIR=/var/lib/edgeforge/agent
# The image's `node` user, by number: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 1000:1000
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--import", "tsx"]
CMD ["services/control-plane/main.ts"]
