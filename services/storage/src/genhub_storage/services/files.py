"""A job's files for one app: listing with fresh presigned URLs, and one file's URL."""

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from genhub_platform.errors import ApiError
from pydantic import BaseModel

from genhub_storage.adapters.tables import OutputObject
from genhub_storage.domain import files
from genhub_storage.services.ports import Clock, Presigner, utcnow


class FileReader(Protocol):
    async def job_files(self, app_id: UUID, job_id: UUID) -> list[OutputObject]: ...


class FileView(BaseModel):
    """One file as the internal API returns it (an expired file has no URLs)."""

    index: int
    key: str
    url: str | None
    thumbnail_url: str | None
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    expires_at: datetime
    expired: bool


class FileUrl(BaseModel):
    url: str
    expires_at: datetime


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def download_filename(requested: str | None, job_id: UUID, index: int, key: str) -> str:
    """A header-safe name: letters, digits, `._-` only; the stored extension is kept."""
    ext = key.rsplit(".", 1)[-1]
    stem = _UNSAFE_FILENAME.sub("_", (requested or "").strip()).strip("._")[:100]
    if not stem:
        stem = f"{job_id}-{index}"
    return stem if stem.lower().endswith(f".{ext}") else f"{stem}.{ext}"


class FileQueries:
    def __init__(
        self,
        readers: Callable[[], AbstractAsyncContextManager[FileReader]],
        presigner: Presigner,
        ttl: timedelta,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._readers = readers
        self._presigner = presigner
        self._ttl = ttl
        self._clock = clock

    async def _rows(self, app_id: UUID, job_id: UUID) -> list[OutputObject]:
        async with self._readers() as reader:
            rows = await reader.job_files(app_id, job_id)
        if not rows:
            # Same answer for "no such job" and "another app's job": nothing leaks across tenants.
            raise ApiError(404, "not_found", "This app has no files for that job.")
        return rows

    async def job_files(self, app_id: UUID, job_id: UUID) -> list[FileView]:
        rows = await self._rows(app_id, job_id)
        now = self._clock()
        views = []
        for row in rows:
            expired = files.is_expired(row.expires_at, now)
            ttl = files.url_ttl(now, row.expires_at, self._ttl)
            url = thumb = None
            if not expired:
                url = self._presigner.presign_get(row.key, ttl)
                if row.thumbnail_key:
                    thumb = self._presigner.presign_get(row.thumbnail_key, ttl)
            views.append(
                FileView(
                    index=row.index,
                    key=row.key,
                    url=url,
                    thumbnail_url=thumb,
                    content_type=row.content_type,
                    width=row.width,
                    height=row.height,
                    bytes=row.size_bytes,
                    sha256=row.sha256,
                    expires_at=row.expires_at,
                    expired=expired,
                )
            )
        return views

    async def file_url(
        self,
        app_id: UUID,
        job_id: UUID,
        index: int,
        *,
        download: bool = False,
        filename: str | None = None,
    ) -> FileUrl:
        """A fresh URL for one file; 404 `not_found`, 410 `expired`."""
        rows = await self._rows(app_id, job_id)
        row = next((r for r in rows if r.index == index), None)
        if row is None:
            raise ApiError(404, "not_found", f"This job has no file {index}.")
        now = self._clock()
        if files.is_expired(row.expires_at, now):
            raise ApiError(410, "expired", "This file has expired and was (or will be) deleted.")
        ttl = files.url_ttl(now, row.expires_at, self._ttl)
        name = download_filename(filename, job_id, index, row.key) if download else None
        return FileUrl(
            url=self._presigner.presign_get(row.key, ttl, download_name=name),
            expires_at=now + ttl,
        )
