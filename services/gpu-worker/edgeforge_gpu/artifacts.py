"""Model files in the NATS JetStream Object Store bucket edgeforge_models, named
`<rollout_id>/<artifact>`. Files travel here; Temporal carries only their names and digests."""

import asyncio
import base64
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.js.api import ObjectInfo, StorageType
from nats.js.errors import BucketNotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from edgeforge_gpu.errors import ArtifactError, ConfigError
from edgeforge_gpu.evaluation.model_facts import sha256_file
from edgeforge_gpu.fields import doc

MODELS_BUCKET = "edgeforge_models"  # common/names.ts OBJECT_BUCKETS.models
ROLLOUT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONNECT_TIMEOUT_S = 5

T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    name: str = field(metadata=doc("object name in the edgeforge_models bucket"))
    sha256: str = field(metadata=doc("hex digest of the content"))
    size_bytes: int = field(metadata=doc("content size"))


def object_name(rollout_id: str, *parts: str) -> str:
    """`<rollout_id>/<part>/...`; the rollout id also names a folder, so it is checked here."""
    if not ROLLOUT_ID.match(rollout_id):
        raise ConfigError(
            f"rollout id {rollout_id!r} is not 1-64 of [A-Za-z0-9_-]", "Use such an id"
        )
    return "/".join((rollout_id, *parts))


NATS_NODE = re.compile(r"^(?P<scheme>[a-z]+://)?(?:(?P<credentials>[^:@/]+:[^@/]*)@)?(?P<host>.+)$")


def nats_servers(url: str) -> list[str]:
    """EDGEFORGE_NATS_URL as nats-py's server list: one URL, or the nodes of one cluster separated
    by commas, `nats://user:pass@10.0.0.1:4222,10.0.0.2:4222` (common/nats.ts parseNatsUrl). A node
    without a scheme takes the first one's; the first credentials written count for every node."""
    nodes = [m for part in url.split(",") if (m := NATS_NODE.match(part.strip()))]
    scheme = (nodes[0]["scheme"] or "") if nodes else ""
    credentials = next((n["credentials"] for n in nodes if n["credentials"]), None)
    auth = f"{credentials}@" if credentials else ""
    return [f"{n['scheme'] or scheme}{auth}{n['host']}" for n in nodes]


def _hex_digest(info: ObjectInfo) -> str:
    encoded = (info.digest or "").split("=", 1)[-1]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()


def _stored(info: ObjectInfo) -> StoredObject:
    return StoredObject(name=info.name, sha256=_hex_digest(info), size_bytes=info.size or 0)


class ModelStore:
    """Blocking access to the models bucket, for activities that run on worker threads: each call
    connects, does its work on a private event loop, and disconnects."""

    def __init__(self, nats_url: str, bucket: str = MODELS_BUCKET, replicas: int = 1) -> None:
        self.nats_url = nats_url
        self.bucket = bucket
        # Replicas of the bucket when it is missing and created here (EDGEFORGE_NATS_REPLICAS).
        self.replicas = replicas

    def _run(self, work: Callable[[ObjectStore], Awaitable[T]]) -> T:
        async def session() -> T:
            client = await nats.connect(
                nats_servers(self.nats_url),
                connect_timeout=CONNECT_TIMEOUT_S,
                allow_reconnect=False,
            )
            try:
                js = client.jetstream()
                try:
                    store = await js.object_store(self.bucket)
                except BucketNotFoundError:
                    store = await js.create_object_store(
                        self.bucket, storage=StorageType.FILE, replicas=self.replicas
                    )
                return await work(store)
            finally:
                await client.close()

        return asyncio.run(session())

    def stat(self, name: str) -> StoredObject | None:
        async def work(store: ObjectStore) -> StoredObject | None:
            try:
                return _stored(await store.get_info(name))
            except ObjectNotFoundError:
                return None

        return self._run(work)

    def upload(self, files: dict[str, Path]) -> dict[str, StoredObject]:
        """Puts each file under its name, skipping those already stored with the same sha256."""
        digests = {name: sha256_file(path) for name, path in files.items()}

        async def work(store: ObjectStore) -> dict[str, StoredObject]:
            stored = {}
            for name, path in files.items():
                try:
                    existing = _stored(await store.get_info(name))
                    if existing.sha256 == digests[name]:
                        stored[name] = existing
                        continue
                except ObjectNotFoundError:
                    pass
                with path.open("rb") as content:
                    stored[name] = _stored(await store.put(name, content))
            return stored

        return self._run(work)

    def download(self, name: str, target: Path, sha256: str | None = None) -> Path:
        """Fetches `name` into `target` unless a file with the expected digest is already there.

        nats-py checks the object's own digest while reading; `sha256`, when given, must match it
        too (the caller's record of what it uploaded).
        """
        if sha256 and target.is_file() and sha256_file(target) == sha256:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")

        async def work(store: ObjectStore) -> StoredObject:
            try:
                info = await store.get_info(name)
            except ObjectNotFoundError:
                raise ArtifactError(
                    f"object {name} is not in bucket {self.bucket}",
                    "Upload it first, or run the activity that produces it",
                ) from None
            if sha256 and _hex_digest(info) != sha256:
                raise ArtifactError(
                    f"object {name} has sha256 {_hex_digest(info)}, the request expects {sha256}",
                    "It was replaced since; run the activity that produced it again",
                )
            with partial.open("wb") as out:
                await store.get(name, writeinto=out)
            return _stored(info)

        self._run(work)
        os.replace(partial, target)
        return target

    def put_json(self, name: str, record: dict[str, Any]) -> None:
        payload = json.dumps(record, sort_keys=True).encode()

        async def work(store: ObjectStore) -> None:
            await store.put(name, payload)

        self._run(work)

    def get_json(self, name: str) -> dict[str, Any] | None:
        async def work(store: ObjectStore) -> dict[str, Any] | None:
            try:
                return json.loads((await store.get(name)).data or b"null")
            except ObjectNotFoundError:
                return None

        return self._run(work)
