"""Publish a job's generated outputs: claim checks in, validated files and one job.completed out.

Storage learns the job's plan, watermark, retention and dpi from `job.requested` (SpecRecorder
keeps a small row per job), because `job.generated` does not carry the spec.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol
from uuid import UUID

from genhub_contracts import (
    ErrorCode,
    ErrorInfo,
    JobCompleted,
    JobGenerated,
    JobRequested,
    JobStatus,
    OutputFile,
)
from genhub_contracts.events import JobCompletedPayload
from genhub_contracts.jobs import StagedOutput, Watermark
from genhub_platform.uow import UnitOfWork

from genhub_storage.adapters.blobs import ObjectTooLarge
from genhub_storage.adapters.repository import ObjectRepository
from genhub_storage.adapters.tables import JobOutcome, JobSpecRow, OutputObject
from genhub_storage.domain import files, keys
from genhub_storage.domain.images import (
    EncodeFormat,
    ImageLimits,
    ImageRejected,
    RenderOptions,
    describe,
    render_output,
    resolve_format,
    sha256_hex,
    watermark_signature,
)
from genhub_storage.domain.policy import OutputRules, SpecFacts, default_rules, rules_from_spec
from genhub_storage.services.ports import Blobs, Clock, utcnow

log = logging.getLogger(__name__)

THUMBNAIL_CONTENT_TYPE = "image/webp"


class OutputsRepo(Protocol):
    """The part of ObjectRepository the processor uses (the tests' fakes implement it)."""

    async def outcome(self, app_id: UUID, job_id: UUID) -> JobOutcome | None: ...
    async def record_outcome(self, outcome: JobOutcome) -> bool: ...
    async def add_objects(self, objects: Sequence[OutputObject]) -> int: ...
    async def spec(self, app_id: UUID, job_id: UUID) -> JobSpecRow | None: ...
    async def save_specs(self, specs: Sequence[SpecFacts]) -> None: ...
    async def lock_content(self, app_id: UUID, sha256: str) -> None: ...
    async def file_with_content(self, app_id: UUID, sha256: str) -> OutputObject | None: ...
    async def file_by_key(self, app_id: UUID, key: str) -> OutputObject | None: ...


RepoFor = Callable[[UnitOfWork], OutputsRepo]


def _default_repo(uow: UnitOfWork) -> OutputsRepo:
    return ObjectRepository(uow.session)


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    limits: ImageLimits
    retention_days: int  # used when the job's spec was never seen
    # How long job.generated waits (by redelivery) for its job.requested to be recorded.
    spec_wait: timedelta = timedelta(seconds=30)


class InvalidOutput(Exception):
    """The job's staged outputs cannot be published: the job fails with `invalid_output`."""


class SpecPending(ConnectionError):
    """job.requested not recorded yet: transient, so the consumer redelivers job.generated."""


class SpecRecorder:
    """Consumes job.requested: remembers what storage needs from the spec."""

    def __init__(self, *, repo_for: RepoFor = _default_repo) -> None:
        self._repo_for = repo_for

    async def record(self, event: JobRequested, uow: UnitOfWork) -> None:
        await self.record_many([event], uow)

    async def record_many(self, events: Sequence[JobRequested], uow: UnitOfWork) -> None:
        """One row per job (a replayed job keeps its first row), written in one statement."""
        await self._repo_for(uow).save_specs([_spec_row(event) for event in events])


def _spec_row(event: JobRequested) -> SpecFacts:
    if event.job_id is None:
        raise ValueError("job.requested without job_id")
    spec = event.payload.spec
    rules = rules_from_spec(spec)
    mark = rules.app_watermark
    return SpecFacts(
        job_id=event.job_id,
        app_id=event.app_id,
        user_id=spec.user_id,
        plan=rules.plan,
        watermark_text=mark.text if mark else None,
        watermark_position=mark.position if mark else None,
        watermark_opacity=mark.opacity if mark else None,
        retention_days=rules.retention_days,
        dpi=spec.input.dpi,
    )


def rules_from_row(row: JobSpecRow | SpecFacts) -> OutputRules:
    mark = None
    if row.watermark_text:
        mark = Watermark(
            text=row.watermark_text,
            position=row.watermark_position or "bottom-right",
            opacity=row.watermark_opacity or 0.5,
        )
    base = OutputRules(plan=row.plan, app_watermark=mark, retention_days=row.retention_days)
    return replace(base, dpi=row.dpi) if row.dpi else base


@dataclass(frozen=True, slots=True)
class _Prepared:
    index: int
    key: str
    thumbnail_key: str | None
    data: bytes | None  # None: nothing to write (already stored, or a reference)
    thumbnail: bytes | None
    size: int
    width: int
    height: int
    sha256: str
    content_type: str
    watermark: str | None


class OutputProcessor:
    """Turns `job.generated` (claim checks) into published files and one `job.completed`.

    Runs inside the consumer's unit of work. Object writes come first and are idempotent by key;
    the rows, the outcome and the event commit together afterwards. If that commit is lost after
    the staged objects were deleted, the redelivery finds the outputs already written and adopts
    them instead of failing the job. Identical bytes are stored once per app: a new file whose
    SHA-256 the app already has references the existing object.
    """

    def __init__(
        self,
        blobs: Blobs,
        policy: OutputPolicy,
        *,
        repo_for: RepoFor = _default_repo,
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
        rules = await self._rules(repo, event, job_id)
        options = RenderOptions(
            format=resolve_format(event.payload.output_format),
            watermark=rules.watermark,
            dpi=rules.dpi,
        )
        try:
            prepared = await self._prepare_all(repo, event, job_id, options)
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

        stored = await self._store_deduplicated(repo, app_id, prepared)
        if not await repo.record_outcome(
            JobOutcome(job_id=job_id, app_id=app_id, status=JobStatus.SUCCEEDED.value)
        ):
            return  # a concurrent delivery completed it first
        expires_at = files.expiry(self._clock(), rules.retention_days)
        await repo.add_objects(
            [
                OutputObject(
                    app_id=app_id,
                    job_id=job_id,
                    index=p.index,
                    user_id=event.payload.user_id,
                    key=p.key,
                    thumbnail_key=p.thumbnail_key,
                    size_bytes=p.size,
                    width=p.width,
                    height=p.height,
                    content_type=p.content_type,
                    sha256=p.sha256,
                    watermark=p.watermark,
                    expires_at=expires_at,
                )
                for p in stored
            ]
        )
        if not event.payload.cache_hit:
            # The claim checks are spent; the outputs are safely in place. A cache hit's
            # "staged" keys are another job's outputs: never deleted here.
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
            for p in stored
        ]
        uow.publish(_completed(event, job_id, outputs, None))

    async def _rules(self, repo: OutputsRepo, event: JobGenerated, job_id: UUID) -> OutputRules:
        row = await repo.spec(event.app_id, job_id)
        if row is not None:
            return rules_from_row(row)
        wait = self._policy.spec_wait
        if wait > timedelta(0) and self._clock() - event.occurred_at < wait:
            raise SpecPending(f"job {job_id}: job.requested not recorded yet")
        log.warning("job %s: no job.requested recorded; using deployment defaults", job_id)
        return default_rules(self._policy.retention_days)

    async def _store_deduplicated(
        self, repo: OutputsRepo, app_id: UUID, prepared: list[_Prepared]
    ) -> list[_Prepared]:
        """Write new bytes; bytes the app already has are referenced, not written again.

        The content lock (held until commit) keeps the sweep from deleting an object between
        our lookup and our row's commit.
        """
        stored: list[_Prepared] = []
        in_this_job: dict[str, _Prepared] = {}
        # Locks in a fixed order (the sweep sorts too), so two holders never deadlock.
        for sha in sorted({p.sha256 for p in prepared}):
            await repo.lock_content(app_id, sha)
        for item in prepared:
            if item.data is None:
                stored.append(item)
                continue
            twin = in_this_job.get(item.sha256)
            existing = await repo.file_with_content(app_id, item.sha256)
            if twin is not None:
                stored.append(replace(item, key=twin.key, thumbnail_key=twin.thumbnail_key))
            elif existing is not None:
                log.info("output %s deduplicated onto %s", item.key, existing.key)
                stored.append(replace(item, key=existing.key, thumbnail_key=existing.thumbnail_key))
            else:
                await self._blobs.write(item.key, item.data, item.content_type)
                if item.thumbnail is not None and item.thumbnail_key is not None:
                    await self._blobs.write(
                        item.thumbnail_key, item.thumbnail, THUMBNAIL_CONTENT_TYPE
                    )
                stored.append(item)
                in_this_job[item.sha256] = item
        return stored

    async def _prepare_all(
        self, repo: OutputsRepo, event: JobGenerated, job_id: UUID, options: RenderOptions
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
            if event.payload.cache_hit:
                prepared.append(
                    await self._prepare_cached(repo, event.app_id, job_id, item, options)
                )
                continue
            if not keys.is_staged_for(item.key, event.app_id, job_id):
                raise InvalidOutput(f"output {item.index}: key outside this job's staging area")
            prepared.append(await self._prepare_staged(event.app_id, job_id, item, options))
        return prepared

    def _targets(
        self, app_id: UUID, job_id: UUID, index: int, fmt: EncodeFormat
    ) -> tuple[str, str]:
        return keys.output_key(app_id, job_id, index, fmt), keys.thumbnail_key(
            app_id, job_id, index
        )

    async def _read_limited(self, index: int, key: str) -> bytes | None:
        limits = self._policy.limits
        try:
            return await self._blobs.read(key, max_bytes=limits.max_bytes)
        except ObjectTooLarge as exc:
            raise InvalidOutput(
                f"output {index}: too_many_bytes: larger than {limits.max_bytes} bytes"
            ) from exc

    async def _render(
        self, index: int, data: bytes, out_key: str, thumb_key: str, options: RenderOptions
    ) -> _Prepared:
        try:
            # CPU-bound decode/encode: off the event loop.
            image = await asyncio.to_thread(render_output, data, self._policy.limits, options)
        except ImageRejected as exc:
            raise InvalidOutput(f"output {index}: {exc}") from exc
        return _Prepared(
            index=index,
            key=out_key,
            thumbnail_key=thumb_key,
            data=image.data,
            thumbnail=image.thumbnail,
            size=len(image.data),
            width=image.width,
            height=image.height,
            sha256=image.sha256,
            content_type=image.content_type,
            watermark=watermark_signature(options.watermark),
        )

    async def _prepare_staged(
        self, app_id: UUID, job_id: UUID, item: StagedOutput, options: RenderOptions
    ) -> _Prepared:
        out_key, thumb_key = self._targets(app_id, job_id, item.index, options.format)
        data = await self._read_limited(item.index, item.key)
        if data is None:
            return await self._adopt(item.index, item.key, out_key, thumb_key, options)
        return await self._render(item.index, data, out_key, thumb_key, options)

    async def _prepare_cached(
        self,
        repo: OutputsRepo,
        app_id: UUID,
        job_id: UUID,
        item: StagedOutput,
        options: RenderOptions,
    ) -> _Prepared:
        """A cache hit points at an earlier job's output of the same app.

        Same format and same watermark: the new file references the same object (nothing is
        copied). Otherwise the clean source is re-rendered. A watermarked source cannot give an
        unmarked (or differently marked) output, and a pdf cannot be decoded: the job fails.
        """
        if not keys.is_output_of_app(item.key, app_id):
            raise InvalidOutput(f"output {item.index}: cached key is not an output of this app")
        source = await repo.file_by_key(app_id, item.key)
        if source is None or files.is_expired(source.expires_at, self._clock()):
            raise InvalidOutput(f"output {item.index}: cached output {item.key} is gone")
        wanted = watermark_signature(options.watermark)
        if source.content_type == options.format.content_type and source.watermark == wanted:
            return _Prepared(
                index=item.index,
                key=source.key,
                thumbnail_key=source.thumbnail_key,
                data=None,
                thumbnail=None,
                size=source.size_bytes,
                width=source.width,
                height=source.height,
                sha256=source.sha256,
                content_type=source.content_type,
                watermark=source.watermark,
            )
        if source.watermark is not None or source.content_type == EncodeFormat.PDF.content_type:
            raise InvalidOutput(
                f"output {item.index}: cache_incompatible: cached output {item.key} cannot be "
                f"rendered as {options.format.value} with watermark={wanted is not None}"
            )
        data = await self._read_limited(item.index, item.key)
        if data is None:
            raise InvalidOutput(f"output {item.index}: cached object {item.key} is missing")
        out_key, thumb_key = self._targets(app_id, job_id, item.index, options.format)
        return await self._render(item.index, data, out_key, thumb_key, options)

    async def _adopt(
        self, index: int, staged_key: str, out_key: str, thumb_key: str, options: RenderOptions
    ) -> _Prepared:
        """Staged object gone: fine only if an earlier attempt already wrote the output."""
        limits = self._policy.limits
        # Worst-case PNG of max_pixels RGBA pixels, with row filters and framing.
        cap = max(limits.max_bytes, limits.max_pixels * 5 + 65536)
        try:
            existing = await self._blobs.read(out_key, max_bytes=cap)
        except ObjectTooLarge:
            existing = None
        if existing is None:
            raise InvalidOutput(f"output {index}: missing: staged object {staged_key} not found")
        try:
            width, height = await asyncio.to_thread(describe, existing, options.format)
        except ImageRejected as exc:
            raise InvalidOutput(f"output {index}: {exc}") from exc
        log.info("adopting output %s written by an earlier attempt", out_key)
        return _Prepared(
            index=index,
            key=out_key,
            thumbnail_key=thumb_key,
            data=None,
            thumbnail=None,
            size=len(existing),
            width=width,
            height=height,
            sha256=sha256_hex(existing),
            content_type=options.format.content_type,
            watermark=watermark_signature(options.watermark),
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
            cache_hit=p.cache_hit,
            provider_cost_usd=p.provider_cost_usd,
        ),
    )
