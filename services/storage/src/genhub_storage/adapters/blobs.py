"""Object storage as the use cases need it, on top of the platform's ObjectStore.

Translates S3 failures into two outcomes the saga cares about: "the object is not there"
(a bad claim check: the job fails) and "storage is unwell" (raised as ConnectionError, which
the platform consumer treats as transient and redelivers instead of dead-lettering).
"""

import asyncio
from datetime import timedelta

from genhub_platform.objectstore import ObjectStore
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


class BlobStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

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

    def presign_get(self, key: str, ttl: timedelta) -> str:
        return self._store.presign_get(key, ttl)

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Readiness: the bucket answers (a stat of a missing key is a fine answer)."""
        try:
            await asyncio.wait_for(self._store.stat(".readyz"), timeout=timeout_s)
        except Exception:
            return False
        return True
