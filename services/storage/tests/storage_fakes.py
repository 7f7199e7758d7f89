"""In-memory stand-ins for the unit of work, repository and object storage."""

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from genhub_storage.adapters.blobs import Listed, ObjectTooLarge
from genhub_storage.adapters.tables import JobOutcome, JobSpecRow, OutputObject, UploadObject
from genhub_storage.domain.policy import SpecFacts


class FakeUow:
    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish(self, event: Any) -> None:
        self.published.append(event)


class FakeRepo:
    def __init__(self) -> None:
        self.outcomes: dict[UUID, JobOutcome] = {}
        self.objects: dict[tuple[UUID, UUID, int], OutputObject] = {}
        self.specs: dict[UUID, JobSpecRow] = {}
        self.uploads: dict[str, UploadObject] = {}
        self.locks: list[tuple[UUID, str]] = []
        self.commits = 0

    async def commit(self) -> None:
        self.commits += 1

    async def save_specs(self, specs: Sequence[SpecFacts]) -> None:
        for spec in specs:
            self.specs.setdefault(spec.job_id, JobSpecRow(**asdict(spec)))

    async def spec(self, app_id: UUID, job_id: UUID) -> JobSpecRow | None:
        found = self.specs.get(job_id)
        return found if found is not None and found.app_id == app_id else None

    async def lock_content(self, app_id: UUID, sha256: str) -> None:
        self.locks.append((app_id, sha256))

    async def file_with_content(self, app_id: UUID, sha256: str) -> OutputObject | None:
        return next(
            (o for o in self.objects.values() if o.app_id == app_id and o.sha256 == sha256), None
        )

    async def file_by_key(self, app_id: UUID, key: str) -> OutputObject | None:
        return next((o for o in self.objects.values() if o.app_id == app_id and o.key == key), None)

    async def add_upload(self, upload: UploadObject) -> None:
        self.uploads[upload.key] = upload

    async def upload(self, app_id: UUID, key: str) -> UploadObject | None:
        found = self.uploads.get(key)
        return found if found is not None and found.app_id == app_id else None

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

    async def list(self, prefix: str, *, limit: int = 10_000) -> list[Listed]:
        old = datetime(2000, 1, 1, tzinfo=UTC)
        return [Listed(k, old) for k in sorted(self.objects) if k.startswith(prefix)][:limit]

    def presign_get(self, key: str, ttl: timedelta, *, download_name: str | None = None) -> str:
        url = f"https://s3.test/{self.bucket}/{key}?ttl={int(ttl.total_seconds())}"
        return f"{url}&download={download_name}" if download_name else url
