"""Use cases: publish a job's generated outputs, and list a job's files with fresh URLs."""

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

from genhub_contracts import ErrorCode, ErrorInfo, JobCompleted, JobGenerated, JobStatus, OutputFile
from genhub_contracts.events import JobCompletedPayload
from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork

from genhub_storage.adapters.blobs import ObjectTooLarge
from genhub_storage.adapters.repository import ObjectRepository
from genhub_storage.adapters.tables import JobOutcome, OutputObject
from genhub_storage.domain import files, keys
from genhub_storage.domain.images import (
    EncodeFormat,
    ImageLimits,
    ImageRejected,
    describe_png,
    normalize_image,
    resolve_format,
    sha256_hex,
)

log = logging.getLogger(__name__)

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
    def presign_get(self, key: str, ttl: timedelta) -> str: ...


class OutputsRepo(Protocol):
    async def outcome(self, app_id: UUID, job_id: UUID) -> JobOutcome | None: ...
    async def record_outcome(self, outcome: JobOutcome) -> bool: ...
    async def add_objects(self, objects: Sequence[OutputObject]) -> int: ...


class FileReader(Protocol):
    async def job_files(self, app_id: UUID, job_id: UUID) -> list[OutputObject]: ...


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    limits: ImageLimits
    retention_days: int


class InvalidOutput(Exception):
    """The job's staged outputs cannot be published: the job fails with `invalid_output`."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    index: int
    key: str
    data: bytes | None  # None: already stored by an earlier, uncommitted attempt
    size: int
    width: int
    height: int
    sha256: str
    content_type: str


class OutputProcessor:
    """Turns `job.generated` (claim checks) into published objects and one `job.completed`.

    Runs inside the consumer's unit of work. Object writes come first and are idempotent by key;
    the rows, the outcome and the event commit together afterwards. If that commit is lost after
    the staged objects were deleted, the redelivery finds the outputs already written and adopts
    them instead of failing the job.
    """

    def __init__(
        self,
        blobs: Blobs,
        policy: OutputPolicy,
        *,
        repo_for: Callable[[UnitOfWork], OutputsRepo] = lambda uow: ObjectRepository(uow.session),
        clock: Clock = utcnow,
    ) -> None:
        self._blobs = blobs
        self._policy = policy
        self._repo_for = repo_for
        self._clock = clock

    async def complete_job(self, event: JobGenerated, uow: UnitOfWork) -> None:
        if event.job_id is None:
            raise ValueError("job.generated without job_id")  # poison: dead-lettered
        app_id, job_id = event.app_id, event.job_id
        repo = self._repo_for(uow)
        if (done := await repo.outcome(app_id, job_id)) is not None:
            log.info("job %s already completed (%s); ignoring job.generated", job_id, done.status)
            return

        fmt = resolve_format(event.payload.output_format)
        try:
            prepared = await self._prepare_all(event, job_id, fmt)
        except InvalidOutput as exc:
            log.warning("job %s: invalid output: %s", job_id, exc)
            if await repo.record_outcome(
                JobOutcome(
                    job_id=job_id,
                    app_id=app_id,
                    status=JobStatus.FAILED.value,
                    error_code=ErrorCode.INVALID_OUTPUT.value,
                )
            ):
                uow.publish(_completed(event, job_id, [], str(exc)))
            return

        for item in prepared:
            if item.data is not None:
                await self._blobs.write(item.key, item.data, item.content_type)
        if not await repo.record_outcome(
            JobOutcome(job_id=job_id, app_id=app_id, status=JobStatus.SUCCEEDED.value)
        ):
            return  # a concurrent delivery completed it first
        expires_at = files.expiry(self._clock(), self._policy.retention_days)
        await repo.add_objects(
            [
                OutputObject(
                    app_id=app_id,
                    job_id=job_id,
                    index=p.index,
                    key=p.key,
                    size_bytes=p.size,
                    width=p.width,
                    height=p.height,
                    content_type=p.content_type,
                    sha256=p.sha256,
                    expires_at=expires_at,
                )
                for p in prepared
            ]
        )
        # The claim checks are spent; the outputs are safely in place.
        for staged in event.payload.staged:
            await self._blobs.delete(staged.key)
        outputs = [
            OutputFile(
                index=p.index,
                key=p.key,
                content_type=p.content_type,
                width=p.width,
                height=p.height,
                bytes=p.size,
                sha256=p.sha256,
            )
            for p in prepared
        ]
        uow.publish(_completed(event, job_id, outputs, None))

    async def _prepare_all(
        self, event: JobGenerated, job_id: UUID, fmt: EncodeFormat
    ) -> list[_Prepared]:
        """Validate every staged output before writing any, so a bad one leaves nothing behind."""
        staged = event.payload.staged
        if not staged:
            raise InvalidOutput("the provider returned no outputs")
        indexes = [s.index for s in staged]
        if len(set(indexes)) != len(indexes):
            raise InvalidOutput(f"duplicate output indexes {sorted(indexes)}")
        prepared = []
        for item in sorted(staged, key=lambda s: s.index):
            if item.bucket != self._blobs.bucket:
                raise InvalidOutput(f"output {item.index}: staged in unknown bucket {item.bucket}")
            if not keys.is_staged_for(item.key, event.app_id, job_id):
                raise InvalidOutput(f"output {item.index}: key outside this job's staging area")
            out_key = keys.output_key(event.app_id, job_id, item.index, fmt)
            prepared.append(await self._prepare_one(item.index, item.key, out_key, fmt))
        return prepared

    async def _prepare_one(
        self, index: int, staged_key: str, out_key: str, fmt: EncodeFormat
    ) -> _Prepared:
        limits = self._policy.limits
        try:
            data = await self._blobs.read(staged_key, max_bytes=limits.max_bytes)
        except ObjectTooLarge as exc:
            raise InvalidOutput(
                f"output {index}: too_many_bytes: larger than {limits.max_bytes} bytes"
            ) from exc
        if data is None:
            return await self._adopt(index, staged_key, out_key, fmt)
        try:
            # CPU-bound decode/encode: off the event loop.
            image = await asyncio.to_thread(normalize_image, data, limits, fmt)
        except ImageRejected as exc:
            raise InvalidOutput(f"output {index}: {exc}") from exc
        return _Prepared(
            index=index,
            key=out_key,
            data=image.data,
            size=len(image.data),
            width=image.width,
            height=image.height,
            sha256=image.sha256,
            content_type=image.content_type,
        )

    async def _adopt(
        self, index: int, staged_key: str, out_key: str, fmt: EncodeFormat
    ) -> _Prepared:
        """Staged object gone: fine only if an earlier attempt already wrote the output."""
        # Worst-case PNG of max_pixels RGBA pixels, with row filters and framing.
        cap = max(self._policy.limits.max_bytes, self._policy.limits.max_pixels * 5 + 65536)
        try:
            existing = await self._blobs.read(out_key, max_bytes=cap)
        except ObjectTooLarge:
            existing = None
        if existing is None:
            raise InvalidOutput(f"output {index}: missing: staged object {staged_key} not found")
        try:
            width, height = await asyncio.to_thread(describe_png, existing)
        except ImageRejected as exc:
            raise InvalidOutput(f"output {index}: {exc}") from exc
        log.info("adopting output %s written by an earlier attempt", out_key)
        return _Prepared(
            index=index,
            key=out_key,
            data=None,
            size=len(existing),
            width=width,
            height=height,
            sha256=sha256_hex(existing),
            content_type=fmt.content_type,
        )


def _completed(
    event: JobGenerated, job_id: UUID, outputs: list[OutputFile], error: str | None
) -> JobCompleted:
    p = event.payload
    return JobCompleted.new(
        app_id=event.app_id,
        job_id=job_id,
        payload=JobCompletedPayload(
            user_id=p.user_id,
            status=JobStatus.FAILED if error is not None else JobStatus.SUCCEEDED,
            requested_outputs=p.requested_outputs,
            outputs=outputs,
            error=ErrorInfo(code=ErrorCode.INVALID_OUTPUT, message=error) if error else None,
            provider=p.provider,
            attempts=p.attempts,
        ),
    )


@dataclass(frozen=True, slots=True)
class FileView:
    index: int
    key: str
    url: str | None
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    expires_at: datetime
    expired: bool


class FileQueries:
    """A job's files for one app, each with a fresh presigned GET URL."""

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

    async def job_files(self, app_id: UUID, job_id: UUID) -> list[FileView]:
        async with self._readers() as reader:
            rows = await reader.job_files(app_id, job_id)
        if not rows:
            # Same answer for "no such job" and "another app's job": nothing leaks across tenants.
            raise ApiError(404, "not_found", "This app has no files for that job.")
        now = self._clock()
        views = []
        for row in rows:
            expired = files.is_expired(row.expires_at, now)
            url = (
                None
                if expired
                else self._presigner.presign_get(
                    row.key, files.url_ttl(now, row.expires_at, self._ttl)
                )
            )
            views.append(
                FileView(
                    index=row.index,
                    key=row.key,
                    url=url,
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
