"""Object storage as the use cases need it, on top of the platform's ObjectStore.

Translates S3 failures into two outcomes the saga cares about: "the object is not there"
(a bad claim check: the job fails) and "storage is unwell" (raised as ConnectionError, which
the platform consumer treats as transient and redelivers instead of dead-lettering).
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError as Urllib3Error

_MISSING = frozenset({"NoSuchKey", "NoSuchObject"})


class ObjectStoreUnavailable(ConnectionError):
    """Object storage could not serve a request; retry later."""


class ObjectTooLarge(Exception):
    def __init__(self, key: str, max_bytes: int) -> None:
        super().__init__(f"{key} is larger than {max_bytes} bytes")
        self.key = key
        self.max_bytes = max_bytes


@dataclass(frozen=True, slots=True)
class Listed:
    key: str
    last_modified: datetime | None


def _listing_client(settings: ObjectStoreSettings) -> Minio:
    """The platform ObjectStore has no listing; the sweep and erasure need one."""
    endpoint, secure = settings.endpoint, settings.secure
    for scheme, is_secure in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            endpoint, secure = endpoint.removeprefix(scheme).rstrip("/"), is_secure
    return Minio(
        endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key.get_secret_value(),
        secure=secure,
        region=settings.region,
    )


class BlobStore:
    def __init__(self, store: ObjectStore, settings: ObjectStoreSettings | None = None) -> None:
        self._store = store
        self._lister = _listing_client(settings or ObjectStoreSettings())

    @property
    def bucket(self) -> str:
        return self._store.bucket

    async def read(self, key: str, *, max_bytes: int) -> bytes | None:
        """The object's bytes, None when it does not exist; ObjectTooLarge past `max_bytes`.

        Reads at most max_bytes + 1 bytes, so an oversized object never fills memory.
        """
        try:
            data = await self._store.get(key, max_bytes=max_bytes)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise ObjectStoreUnavailable(f"reading {key}: {exc.code}") from exc
        except Urllib3Error as exc:
            raise ObjectStoreUnavailable(f"reading {key}: {exc}") from exc
        if len(data) > max_bytes:
            raise ObjectTooLarge(key, max_bytes)
        return data

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        try:
            await self._store.put(key, data, content_type)
        except (S3Error, Urllib3Error) as exc:
            raise ObjectStoreUnavailable(f"writing {key}: {exc}") from exc

    async def delete(self, key: str) -> None:
        """Delete; deleting a missing object is not an error (S3 semantics)."""
        try:
            await self._store.delete(key)
        except (S3Error, Urllib3Error) as exc:
            raise ObjectStoreUnavailable(f"deleting {key}: {exc}") from exc

    def presign_get(self, key: str, ttl: timedelta, *, download_name: str | None = None) -> str:
        return self._store.presign_get(key, ttl, download_name=download_name)

    async def list(self, prefix: str, *, limit: int = 10_000) -> list[Listed]:
        """Objects under `prefix` (recursive), at most `limit` per call."""

        def run() -> list[Listed]:
            found = []
            for obj in self._lister.list_objects(self.bucket, prefix=prefix, recursive=True):
                if obj.object_name is None:
                    continue
                found.append(Listed(obj.object_name, obj.last_modified))
                if len(found) >= limit:
                    break
            return found

        try:
            return await asyncio.to_thread(run)
        except (S3Error, Urllib3Error) as exc:
            raise ObjectStoreUnavailable(f"listing {prefix}: {exc}") from exc

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Readiness: the bucket answers (a stat of a missing key is a fine answer)."""
        try:
            await asyncio.wait_for(self._store.stat(".readyz"), timeout=timeout_s)
        except Exception:
            return False
        return True
