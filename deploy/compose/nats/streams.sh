#!/bin/sh
# Makes the JetStream buckets replicated across the cluster. The services create the buckets they
# use on first start, but with one replica (the client libraries' default, and the code sets no
# other), so in a cluster their data would live on a single node. This runs once the cluster is up
# (compose: the nats-init service; Kubernetes: the nats-streams Job), in either order relative to
# the services: a missing bucket is created, an existing one is scaled up in place.
# Options other than replicas match what the code asks for (history 1, file storage).
# Needs the `nats` CLI (natsio/nats-box) and NATS_URL with the full-access user's credentials.
set -eu

REPLICAS="${NATS_REPLICAS:-3}"
# Names from common/names.ts (KV_BUCKETS, OBJECT_BUCKETS); the deploy test keeps them in sync.
KV_BUCKETS="edgeforge_devices edgeforge_desired edgeforge_rollouts edgeforge_benchmarks"
OBJECT_BUCKETS="edgeforge_models"

# The cluster may still be electing its JetStream meta leader: wait for the JetStream API.
tries=0
until nats account info >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "JetStream is not available at the NATS_URL server after 60 s" >&2
    exit 1
  fi
  sleep 1
done

for bucket in $KV_BUCKETS; do
  if nats stream info "KV_$bucket" >/dev/null 2>&1; then
    nats stream edit "KV_$bucket" --replicas "$REPLICAS" --force >/dev/null
  else
    nats kv add "$bucket" --history 1 --storage file --replicas "$REPLICAS" >/dev/null
  fi
  echo "kv $bucket: $REPLICAS replicas"
done
for bucket in $OBJECT_BUCKETS; do
  if nats stream info "OBJ_$bucket" >/dev/null 2>&1; then
    nats stream edit "OBJ_$bucket" --replicas "$REPLICAS" --force >/dev/null
  else
    nats object add "$bucket" --storage file --replicas "$REPLICAS" >/dev/null
  fi
  echo "object store $bucket: $REPLICAS replicas"
done
