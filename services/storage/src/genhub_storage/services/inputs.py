"""Input images for image-to-image jobs: raw uploads and imports of remote https URLs.

The type is sniffed from the bytes (the client's Content-Type is ignored); the image is fully
decoded, stripped of metadata and re-encoded in its own format before it is stored under
`inputs/{app_id}/<uuid>.<ext>` with a short retention.
"""

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID, uuid4

from genhub_platform.errors import ApiError
from pydantic import BaseModel

from genhub_storage.adapters.remote import FetchFailed, FetchRefused, FetchTooLarge
from genhub_storage.adapters.tables import UploadObject
from genhub_storage.domain import keys
from genhub_storage.domain.images import ImageLimits, ImageRejected, RejectReason, clean_upload
from genhub_storage.services.ports import Blobs, Clock, utcnow


class UploadsRepo(Protocol):
    async def add_upload(self, upload: UploadObject) -> None: ...
    async def upload(self, app_id: UUID, key: str) -> UploadObject | None: ...
    async def commit(self) -> None: ...


class Fetcher(Protocol):
    async def fetch(self, url: str, *, max_bytes: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class InputPolicy:
    limits: ImageLimits
    retention: timedelta


class UploadView(BaseModel):
    """An input image as the internal API returns it."""

    key: str
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    expires_at: datetime
    filename: str | None
    source_url: str | None


# Stable codes of docs/internal-apis.md for each reason an image is refused.
_REJECTIONS: dict[RejectReason, tuple[int, str]] = {
    RejectReason.TOO_MANY_BYTES: (413, "payload_too_large"),
    RejectReason.NOT_AN_IMAGE: (415, "unsupported_media_type"),
    RejectReason.TOO_MANY_PIXELS: (422, "image_too_large"),
    RejectReason.EMPTY: (422, "invalid_image"),
    RejectReason.CORRUPT: (422, "invalid_image"),
    RejectReason.UNSUPPORTED_MODE: (422, "invalid_image"),
}


def rejection_error(exc: ImageRejected) -> ApiError:
    status, code = _REJECTIONS[exc.reason]
    return ApiError(status, code, exc.message)


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The image is larger than {max_bytes} bytes.")


class InputStore:
    def __init__(
        self,
        repos: Callable[[], AbstractAsyncContextManager[UploadsRepo]],
        blobs: Blobs,
        fetcher: Fetcher,
        policy: InputPolicy,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._repos = repos
        self._blobs = blobs
        self._fetcher = fetcher
        self._policy = policy
        self._clock = clock

    @property
    def max_bytes(self) -> int:
        return self._policy.limits.max_bytes

    async def upload(
        self,
        app_id: UUID,
        data: bytes,
        *,
        filename: str | None = None,
        user_id: str | None = None,
        source_url: str | None = None,
    ) -> UploadView:
        try:
            image = await asyncio.to_thread(clean_upload, data, self._policy.limits)
        except ImageRejected as exc:
            raise rejection_error(exc) from exc
        key = keys.input_key(app_id, uuid4(), image.format)
        await self._blobs.write(key, image.data, image.content_type)
        row = UploadObject(
            key=key,
            app_id=app_id,
            user_id=user_id,
            filename=(filename or "")[:255] or None,
            source_url=source_url,
            content_type=image.content_type,
            width=image.width,
            height=image.height,
            size_bytes=len(image.data),
            sha256=image.sha256,
            expires_at=self._clock() + self._policy.retention,
        )
        async with self._repos() as repo:
            await repo.add_upload(row)
            await repo.commit()
        return _view(row)

    async def get(self, app_id: UUID, key: str) -> UploadView:
        """404 `not_found` for unknown keys, other apps' keys and expired inputs."""
        if not keys.is_input_of_app(key, app_id):
            raise ApiError(404, "not_found", "This app has no such upload.")
        async with self._repos() as repo:
            row = await repo.upload(app_id, key)
        if row is None or row.expires_at <= self._clock():
            raise ApiError(404, "not_found", "This app has no such upload.")
        return _view(row)

    async def import_url(self, app_id: UUID, url: str, *, user_id: str | None = None) -> UploadView:
        """Fetch a remote image with SSRF protection, then store it like an upload."""
        try:
            data = await self._fetcher.fetch(url, max_bytes=self.max_bytes)
        except FetchRefused as exc:
            raise ApiError(
                422, "url_refused", f"{exc.message}", extra={"reason": exc.code}
            ) from exc
        except FetchTooLarge as exc:
            raise too_large(exc.max_bytes) from exc
        except FetchFailed as exc:
            raise ApiError(422, "fetch_failed", f"Cannot fetch the image: {exc}") from exc
        return await self.upload(app_id, data, user_id=user_id, source_url=url)


def _view(row: UploadObject) -> UploadView:
    return UploadView(
        key=row.key,
        content_type=row.content_type,
        width=row.width,
        height=row.height,
        bytes=row.size_bytes,
        sha256=row.sha256,
        expires_at=row.expires_at,
        filename=row.filename,
        source_url=row.source_url,
    )
