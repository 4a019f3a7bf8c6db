"""EDGEFORGE_NATS_URL with several cluster nodes and EDGEFORGE_NATS_REPLICAS, as the TypeScript side
reads them (common/nats.ts parseNatsUrl, common/config.ts)."""

import pytest

from edgeforge_gpu.artifacts import nats_servers
from edgeforge_gpu.settings import Settings


def test_a_comma_separated_url_lists_every_node_with_the_scheme_and_credentials():
    assert nats_servers("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]
    assert nats_servers("nats://svc:p%40ss@10.0.0.1:4222, 10.0.0.2:4222,nats://10.0.0.3:4222") == [
        "nats://svc:p%40ss@10.0.0.1:4222",
        "nats://svc:p%40ss@10.0.0.2:4222",
        "nats://svc:p%40ss@10.0.0.3:4222",
    ]
    assert nats_servers("tls://10.0.0.1:4222,nats://u:p@10.0.0.2:4222") == [
        "tls://u:p@10.0.0.1:4222",
        "nats://u:p@10.0.0.2:4222",
    ]


def test_replicas_come_from_the_environment_and_bad_values_are_named():
    assert Settings.from_env({}).nats_replicas == 1
    assert Settings.from_env({"EDGEFORGE_NATS_REPLICAS": "3"}).nats_replicas == 3
    for bad in ("0", "6", "three", "", "2.5"):
        with pytest.raises(SystemExit, match=r"EDGEFORGE_NATS_REPLICAS=.*from 1 to 5"):
            Settings.from_env({"EDGEFORGE_NATS_REPLICAS": bad})
