"""Retention sweep and erasure: delete expired or erased files, inputs and stale staging.

An output object may be shared by several files (dedupe), so it is deleted only when the last
row referencing it is gone. Rows go first (committed under the content lock), objects after the
commit: a crash in between leaves an unreferenced object (the next erasure of the app lists it),
never a row pointing at nothing.
"""

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Protocol
from uuid import UUID

from genhub_storage.adapters.blobs import Listed
from genhub_storage.adapters.tables import OutputObject, UploadObject
from genhub_storage.domain import keys
from genhub_storage.services.ports import Blobs, Clock, utcnow

log = logging.getLogger(__name__)

BATCH = 500


class LifecycleRepo(Protocol):
    async def commit(self) -> None: ...
    async def lock_content(self, app_id: UUID, sha256: str) -> None: ...
    async def key_referenced(self, app_id: UUID, key: str) -> bool: ...
    async def expired_files(self, now: datetime, limit: int) -> list[OutputObject]: ...
    async def files_of(
        self, app_id: UUID, user_id: str | None, limit: int
    ) -> list[OutputObject]: ...
    async def delete_files(self, app_id: UUID, ids: Sequence[UUID]) -> None: ...
    async def expired_uploads(self, now: datetime, limit: int) -> list[UploadObject]: ...
    async def uploads_of(
        self, app_id: UUID, user_id: str | None, limit: int
    ) -> list[UploadObject]: ...
    async def delete_uploads(self, app_id: UUID, keys: Sequence[str]) -> None: ...
    async def prune_specs(self, created_before: datetime) -> int: ...
    async def erase_specs(self, app_id: UUID, user_id: str | None) -> None: ...


class ListingBlobs(Blobs, Protocol):
    async def list(self, prefix: str, *, limit: int = 10_000) -> list[Listed]: ...


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    staging_max_age: timedelta = timedelta(hours=24)
    spec_max_age: timedelta = timedelta(days=7)


@dataclass
class SweepReport:
    files_deleted: int = 0
    objects_deleted: int = 0
    uploads_deleted: int = 0
    staging_deleted: int = 0
    specs_deleted: int = 0
    deleted_keys: list[str] = field(default_factory=list, repr=False)


class Lifecycle:
    def __init__(
        self,
        repos: Callable[[], AbstractAsyncContextManager[LifecycleRepo]],
        blobs: ListingBlobs,
        policy: LifecyclePolicy | None = None,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._repos = repos
        self._blobs = blobs
        self._policy = policy or LifecyclePolicy()
        self._clock = clock

    async def sweep(self) -> SweepReport:
        """One pass: expired files and inputs, orphaned staging objects, old job specs."""
        now = self._clock()
        report = SweepReport()
        while True:
            async with self._repos() as repo:
                rows = await repo.expired_files(now, BATCH)
                doomed = await self._drop_files(repo, rows)
            await self._delete_objects(doomed, report)
            report.files_deleted += len(rows)
            if len(rows) < BATCH:
                break
        while True:
            async with self._repos() as repo:
                uploads = await repo.expired_uploads(now, BATCH)
                await self._drop_uploads(repo, uploads)
            await self._delete_objects([u.key for u in uploads], report)
            report.uploads_deleted += len(uploads)
            if len(uploads) < BATCH:
                break
        stale = now - self._policy.staging_max_age
        staged = await self._blobs.list(f"{keys.STAGING_PREFIX}/")
        old = [s.key for s in staged if s.last_modified is not None and s.last_modified < stale]
        before = report.objects_deleted
        await self._delete_objects(old, report)
        report.staging_deleted = report.objects_deleted - before
        async with self._repos() as repo:
            report.specs_deleted = await repo.prune_specs(now - self._policy.spec_max_age)
            await repo.commit()
        log.info("sweep: %s", report)
        return report

    async def erase(self, app_id: UUID, user_id: str | None) -> int:
        """Delete an app's (or one of its users') files, inputs and specs; objects deleted."""
        report = SweepReport()
        while True:
            async with self._repos() as repo:
                rows = await repo.files_of(app_id, user_id, BATCH)
                doomed = await self._drop_files(repo, rows)
            await self._delete_objects(doomed, report)
            if len(rows) < BATCH:
                break
        while True:
            async with self._repos() as repo:
                uploads = await repo.uploads_of(app_id, user_id, BATCH)
                await self._drop_uploads(repo, uploads)
            await self._delete_objects([u.key for u in uploads], report)
            if len(uploads) < BATCH:
                break
        async with self._repos() as repo:
            await repo.erase_specs(app_id, user_id)
            await repo.commit()
        if user_id is None:
            # A leaving tenant: also whatever no row describes (staging, crash leftovers).
            for prefix in keys.app_prefixes(app_id):
                while listed := await self._blobs.list(prefix, limit=BATCH):
                    await self._delete_objects([x.key for x in listed], report)
        log.info("erased app %s user %s: %d objects", app_id, user_id, report.objects_deleted)
        return report.objects_deleted

    async def _drop_files(self, repo: LifecycleRepo, rows: Sequence[OutputObject]) -> list[str]:
        """Delete the rows; return the object keys no remaining row references (commits)."""
        doomed: list[str] = []
        by_content = sorted(rows, key=lambda r: (str(r.app_id), r.sha256))
        for (_, _), group_iter in groupby(by_content, key=lambda r: (str(r.app_id), r.sha256)):
            group = list(group_iter)
            app_id = group[0].app_id
            await repo.lock_content(app_id, group[0].sha256)
            await repo.delete_files(app_id, [r.id for r in group])
            candidates = {r.key for r in group} | {
                r.thumbnail_key for r in group if r.thumbnail_key
            }
            for key in sorted(candidates):
                if not await repo.key_referenced(app_id, key):
                    doomed.append(key)
        await repo.commit()
        return doomed

    async def _drop_uploads(self, repo: LifecycleRepo, uploads: Sequence[UploadObject]) -> None:
        for app_id, group in groupby(
            sorted(uploads, key=lambda u: str(u.app_id)), lambda u: u.app_id
        ):
            await repo.delete_uploads(app_id, [u.key for u in group])
        await repo.commit()

    async def _delete_objects(self, object_keys: Sequence[str], report: SweepReport) -> None:
        for key in object_keys:
            await self._blobs.delete(key)
            report.objects_deleted += 1
            report.deleted_keys.append(key)
