"""In-memory stand-ins for the unit of work, repository and object storage."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from genhub_storage.adapters.blobs import ObjectTooLarge
from genhub_storage.adapters.tables import JobOutcome, OutputObject


class FakeUow:
    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish(self, event: Any) -> None:
        self.published.append(event)


class FakeRepo:
    def __init__(self) -> None:
        self.outcomes: dict[UUID, JobOutcome] = {}
        self.objects: dict[tuple[UUID, UUID, int], OutputObject] = {}

    async def outcome(self, app_id: UUID, job_id: UUID) -> JobOutcome | None:
        found = self.outcomes.get(job_id)
        return found if found is not None and found.app_id == app_id else None

    async def record_outcome(self, outcome: JobOutcome) -> bool:
        if outcome.job_id in self.outcomes:
            return False
        self.outcomes[outcome.job_id] = outcome
        return True

    async def add_objects(self, objects: Sequence[OutputObject]) -> int:
        added = 0
        for o in objects:
            added += self.objects.setdefault((o.app_id, o.job_id, o.index), o) is o
        return added

    async def job_files(self, app_id: UUID, job_id: UUID) -> list[OutputObject]:
        rows = [o for (a, j, _), o in self.objects.items() if a == app_id and j == job_id]
        return sorted(rows, key=lambda o: o.index)


class FakeBlobs:
    bucket = "genhub"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}

    async def read(self, key: str, *, max_bytes: int) -> bytes | None:
        if key not in self.objects:
            return None
        data = self.objects[key][0]
        if len(data) > max_bytes:
            raise ObjectTooLarge(key, max_bytes)
        return data

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (data, content_type)

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def presign_get(self, key: str, ttl: timedelta) -> str:
        return f"https://s3.test/{self.bucket}/{key}?ttl={int(ttl.total_seconds())}"
