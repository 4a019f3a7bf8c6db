"""Health probe for the gpu worker's container (compose health check, Kubernetes exec probe).

The worker serves no endpoint of its own, so the probe checks what it needs to do work: every
address named by the given environment variables accepts TCP connections.

    python /app/deploy/docker/healthcheck.py EDGEFORGE_TEMPORAL_ADDRESS EDGEFORGE_NATS_URL

A value is host:port or a URL (credentials in it are ignored). Exits 0 when all answer within a
few seconds, 1 otherwise. Standard library only, same contract as healthcheck.js.
"""

import os
import socket
import sys
from urllib.parse import urlsplit

TIMEOUT_S = 3


def address(variable: str) -> tuple[str, int]:
    value = os.environ.get(variable, "")
    if not value:
        raise ValueError(f"{variable} is not set")
    url = urlsplit(value if "://" in value else f"tcp://{value}")
    if not url.hostname or not url.port:
        raise ValueError(f"{variable}={value} is not host:port or a URL with a port")
    return url.hostname, url.port


def main(variables: list[str]) -> int:
    if not variables:
        print("usage: healthcheck.py VARIABLE...", file=sys.stderr)
        return 1
    try:
        for variable in variables:
            socket.create_connection(address(variable), timeout=TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        print(f"unhealthy: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
