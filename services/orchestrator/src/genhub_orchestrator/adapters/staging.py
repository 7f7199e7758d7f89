"""Object storage for staged provider output: PUTs on the event loop, the rest via minio.

Staging is on the hot path (one PUT per output image): `genhub_platform.s3put.S3Putter`
signs and sends it on the event loop over pooled keep-alive connections instead of a
worker-thread hop into minio-py per object. Bucket creation and deletes (rare) stay on
`ObjectStore`.
"""

from genhub_platform.objectstore import ObjectStore
from genhub_platform.s3put import S3Putter


class StagingStore:
    def __init__(self, store: ObjectStore, putter: S3Putter) -> None:
        self.bucket = store.bucket
        self._store = store
        self._putter = putter

    async def ensure_bucket(self) -> None:
        await self._store.ensure_bucket()

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._putter.put(key, data, content_type)

    async def delete(self, key: str) -> None:
        await self._store.delete(key)

    async def close(self) -> None:
        await self._putter.close()
