"""S3-compatible object storage (MinIO locally, any S3 in production), async-friendly.

The minio client is synchronous; calls run in worker threads so they never block the loop.
"""

import asyncio
import io
from datetime import timedelta

from minio import Minio
from minio.error import S3Error
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ObjectStoreSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    endpoint: str = Field(default="127.0.0.1:9000", validation_alias="S3_ENDPOINT")
    access_key: str = Field(default="genhub", validation_alias="S3_ACCESS_KEY")
    secret_key: SecretStr = Field(
        default=SecretStr("genhub-secret-key"), validation_alias="S3_SECRET_KEY"
    )
    secure: bool = Field(default=False, validation_alias="S3_SECURE")
    region: str = Field(default="us-east-1", validation_alias="S3_REGION")
    bucket: str = Field(default="genhub", validation_alias="S3_BUCKET")
    # Host that clients outside the cluster use for presigned URLs (signature covers the host).
    public_endpoint: str | None = Field(default=None, validation_alias="S3_PUBLIC_ENDPOINT")


class StoredObject(BaseModel):
    key: str
    size: int
    content_type: str | None = None


def _strip_scheme(endpoint: str) -> tuple[str, bool | None]:
    for scheme, secure in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            return endpoint.removeprefix(scheme).rstrip("/"), secure
    return endpoint, None


class ObjectStore:
    def __init__(self, settings: ObjectStoreSettings) -> None:
        self.bucket = settings.bucket
        endpoint, secure = _strip_scheme(settings.endpoint)
        self._client = Minio(
            endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure if secure is None else secure,
            region=settings.region,
        )
        public, public_secure = _strip_scheme(settings.public_endpoint or settings.endpoint)
        self._presigner = Minio(
            public,
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure if public_secure is None else public_secure,
            region=settings.region,  # known region: presigning needs no network call
        )

    async def ensure_bucket(self) -> None:
        def create() -> None:
            try:
                if not self._client.bucket_exists(self.bucket):
                    self._client.make_bucket(self.bucket)
            except S3Error as exc:  # another replica created it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

        await asyncio.to_thread(create)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
        )

    async def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                data: bytes = response.read(max_bytes + 1 if max_bytes else None)
                return data
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(read)

    async def stat(self, key: str) -> StoredObject | None:
        def stat() -> StoredObject | None:
            try:
                info = self._client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise
            return StoredObject(key=key, size=info.size or 0, content_type=info.content_type)

        return await asyncio.to_thread(stat)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.remove_object, self.bucket, key)

    def presign_get(self, key: str, ttl: timedelta, *, download_name: str | None = None) -> str:
        headers: dict[str, str | list[str] | tuple[str]] | None = (
            {"response-content-disposition": f'attachment; filename="{download_name}"'}
            if download_name
            else None
        )
        url: str = self._presigner.presigned_get_object(
            self.bucket, key, expires=ttl, response_headers=headers
        )
        return url
