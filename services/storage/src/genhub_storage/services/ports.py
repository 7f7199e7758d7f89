"""What the use cases need from the edges (object storage, clock), as protocols."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Blobs(Protocol):
    @property
    def bucket(self) -> str: ...
    async def read(self, key: str, *, max_bytes: int) -> bytes | None: ...
    async def write(self, key: str, data: bytes, content_type: str) -> None: ...
    async def delete(self, key: str) -> None: ...


class Presigner(Protocol):
    def presign_get(self, key: str, ttl: timedelta, *, download_name: str | None = None) -> str: ...
