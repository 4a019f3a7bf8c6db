#!/usr/bin/env bash
# tether.sh PARENT_PID COMMAND [ARGS...]
# Runs COMMAND and stops it when PARENT_PID dies, even if the parent was killed with SIGKILL
# and had no chance to clean up: test servers and the embedded stack never outlive their owner.
parent=$1
shift
"$@" &
child=$!
stop() {
  kill -TERM "$child" 2>/dev/null
  wait "$child"
  exit $?
}
trap stop TERM INT HUP
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
  sleep 0.5 &
  wait $!
done
if kill -0 "$child" 2>/dev/null; then stop; fi
wait "$child"
