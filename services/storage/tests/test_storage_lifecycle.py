"""Dedupe, retention sweep, erasure and presigned URLs against real PostgreSQL and real MinIO."""

import asyncio
import io
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
from genhub_contracts import JobGenerated, StagedOutput
from genhub_contracts.events import JobGeneratedPayload
from genhub_platform.db import SessionFactory
from genhub_platform.uow import UnitOfWork
from genhub_storage.adapters.blobs import BlobStore
from genhub_storage.adapters.repository import ObjectRepository
from genhub_storage.adapters.tables import JobSpecRow, OutputObject, UploadObject
from genhub_storage.domain.images import ImageLimits
from genhub_storage.main import repositories
from genhub_storage.services import Lifecycle, OutputPolicy, OutputProcessor
from genhub_storage.services.lifecycle import LifecyclePolicy
from PIL import Image
from sqlalchemy import update
from sqlmodel import col, select

LIMITS = ImageLimits(25 * 1024 * 1024, 40_000_000)


def picture(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, format="PNG")
    return buf.getvalue()


async def publish(
    sessions: SessionFactory,
    blobs: BlobStore,
    app: UUID,
    user: str,
    data: bytes,
    *,
    at: datetime | None = None,
) -> tuple[UUID, OutputObject]:
    """Stage `data` for a new job and run the processor over it, as the consumer would."""
    job = uuid4()
    key = f"staging/{app}/{job}/0.png"
    await blobs.write(key, data, "image/png")
    event = JobGenerated.new(
        app_id=app,
        job_id=job,
        payload=JobGeneratedPayload(
            user_id=user,
            provider="mock",
            model="mock",
            requested_outputs=1,
            output_format="png",
            staged=[StagedOutput(index=0, bucket=blobs.bucket, key=key)],
        ),
    )
    clock = (lambda: at) if at else (lambda: datetime.now(UTC))
    processor = OutputProcessor(
        blobs, OutputPolicy(LIMITS, 90, spec_wait=timedelta(0)), clock=clock
    )
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        await processor.complete_job(event, uow)
        await uow.commit()
    async with sessions() as session:
        rows = await ObjectRepository(session).job_files(app, job)
    assert len(rows) == 1, "job was not published"
    return job, rows[0]


async def exists(blobs: BlobStore, key: str) -> bool:
    return await blobs.read(key, max_bytes=10**8) is not None


def lifecycle(sessions: SessionFactory, blobs: BlobStore, **policy: timedelta) -> Lifecycle:
    return Lifecycle(repositories(sessions), blobs, LifecyclePolicy(**policy))


async def test_identical_outputs_share_one_object_per_app(db_sessions, s3) -> None:
    app, other = uuid4(), uuid4()
    data = picture((10, 200, 30))
    job1, first = await publish(db_sessions, s3, app, "u1", data)
    job2, second = await publish(db_sessions, s3, app, "u2", data)
    _, foreign = await publish(db_sessions, s3, other, "u1", data)

    assert second.key == first.key == f"outputs/{app}/{job1}/0.png"
    assert second.thumbnail_key == first.thumbnail_key == f"outputs/{app}/{job1}/0.thumb.webp"
    assert second.sha256 == first.sha256
    assert not await exists(s3, f"outputs/{app}/{job2}/0.png")
    assert foreign.key.startswith(f"outputs/{other}/")  # dedupe never crosses tenants
    assert {x.key for x in await s3.list(f"outputs/{app}/")} == {first.key, first.thumbnail_key}
    assert not any(x.key.startswith("staging/") for x in await s3.list(f"staging/{app}/"))


async def test_sweep_deletes_expired_files_but_keeps_objects_still_referenced(
    db_sessions, s3
) -> None:
    app = uuid4()
    data = picture((1, 2, 3))
    long_ago = datetime.now(UTC) - timedelta(days=200)
    old_job, old = await publish(db_sessions, s3, app, "u1", data, at=long_ago)  # expired
    new_job, new = await publish(db_sessions, s3, app, "u2", data)  # same bytes, alive
    _, lonely = await publish(db_sessions, s3, app, "u3", picture((9, 9, 9)), at=long_ago)
    fresh_staging = f"staging/{app}/{uuid4()}/0.png"
    await s3.write(fresh_staging, b"fresh", "image/png")

    report = await lifecycle(db_sessions, s3, staging_max_age=timedelta(hours=1)).sweep()

    async with db_sessions() as session:
        repo = ObjectRepository(session)
        assert await repo.job_files(app, old_job) == []
        assert [f.key for f in await repo.job_files(app, new_job)] == [old.key]
    assert await exists(s3, old.key) and await exists(s3, str(old.thumbnail_key))  # shared
    assert not await exists(s3, lonely.key) and not await exists(s3, str(lonely.thumbnail_key))
    assert await exists(s3, fresh_staging)  # younger than the staging age
    assert report.files_deleted >= 2 and lonely.key in report.deleted_keys
    assert old.key not in report.deleted_keys

    # Once the last reference expires, the object and its thumbnail go too.
    async with db_sessions() as session:
        await session.exec(
            update(OutputObject)
            .where(col(OutputObject.job_id) == new_job)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    await lifecycle(db_sessions, s3, staging_max_age=timedelta(hours=1)).sweep()
    assert not await exists(s3, new.key) and not await exists(s3, str(new.thumbnail_key))


async def test_sweep_removes_expired_inputs_old_staging_and_old_specs(db_sessions, s3) -> None:
    app = uuid4()
    now = datetime.now(UTC)
    expired_key, live_key = f"inputs/{app}/{uuid4()}.png", f"inputs/{app}/{uuid4()}.png"
    staged = f"staging/{app}/{uuid4()}/0.png"
    for key in (expired_key, live_key, staged):
        await s3.write(key, b"bytes", "image/png")
    old_spec = uuid4()
    async with db_sessions() as session:
        for key, expires in (
            (expired_key, now - timedelta(hours=1)),
            (live_key, now + timedelta(hours=1)),
        ):
            session.add(
                UploadObject(
                    key=key,
                    app_id=app,
                    content_type="image/png",
                    width=1,
                    height=1,
                    size_bytes=5,
                    sha256="0" * 64,
                    expires_at=expires,
                )
            )
        session.add(
            JobSpecRow(
                job_id=old_spec,
                app_id=app,
                user_id="u",
                plan="free",
                retention_days=90,
                created_at=now - timedelta(days=30),
            )
        )
        await session.commit()
    await asyncio.sleep(0.01)

    report = await lifecycle(db_sessions, s3, staging_max_age=timedelta(0)).sweep()

    assert not await exists(s3, expired_key) and await exists(s3, live_key)
    assert not await exists(s3, staged)
    assert report.uploads_deleted >= 1 and report.staging_deleted >= 1
    async with db_sessions() as session:
        assert await ObjectRepository(session).upload(app, expired_key) is None
        assert await ObjectRepository(session).upload(app, live_key) is not None
        assert (
            await session.exec(select(JobSpecRow).where(JobSpecRow.job_id == old_spec))
        ).first() is None


async def test_erase_one_user_then_the_whole_app(db_sessions, s3) -> None:
    app, other_app = uuid4(), uuid4()
    shared = picture((50, 60, 70))
    job_a, a = await publish(db_sessions, s3, app, "alice", shared)
    job_b, b = await publish(db_sessions, s3, app, "bob", shared)
    assert b.key == a.key  # bob's file references alice's object
    job_a2, a2 = await publish(db_sessions, s3, app, "alice", picture((1, 1, 200)))
    _, foreign = await publish(db_sessions, s3, other_app, "alice", shared)
    leftover = f"staging/{app}/{uuid4()}/0.png"
    await s3.write(leftover, b"x", "image/png")
    life = lifecycle(db_sessions, s3)

    deleted = await life.erase(app, "alice")

    assert deleted == 2  # a2 and its thumbnail; the shared object stays for bob
    assert not await exists(s3, a2.key) and await exists(s3, a.key)
    async with db_sessions() as session:
        repo = ObjectRepository(session)
        assert await repo.job_files(app, job_a) == [] and await repo.job_files(app, job_a2) == []
        assert [f.user_id for f in await repo.job_files(app, job_b)] == ["bob"]

    deleted = await life.erase(app, None)

    assert deleted == 3  # the shared object, its thumbnail and the staging leftover
    assert await s3.list(f"outputs/{app}/") == [] and await s3.list(f"staging/{app}/") == []
    assert await exists(s3, foreign.key)  # the other tenant is untouched
    async with db_sessions() as session:
        assert await ObjectRepository(session).job_files(app, job_b) == []


async def test_presigned_urls_expire_and_carry_the_download_name(s3) -> None:
    key = f"outputs/{uuid4()}/{uuid4()}/0.png"
    data = picture((5, 5, 5))
    await s3.write(key, data, "image/png")
    download = s3.presign_get(key, timedelta(minutes=5), download_name="cat-1.png")
    short = s3.presign_get(key, timedelta(seconds=1))

    async with httpx.AsyncClient() as client:
        got = await client.get(download)
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-disposition"] == 'attachment; filename="cat-1.png"'
        await asyncio.sleep(2.1)
        expired = await client.get(short)
        anonymous = await client.get(short.split("?")[0])

    assert expired.status_code == 403 and b"expired" in expired.content.lower()
    assert anonymous.status_code == 403  # the bucket is private


async def test_a_batch_of_job_requested_is_one_insert_and_the_first_spec_wins(
    db_sessions,
) -> None:
    from genhub_contracts import JobRequested
    from genhub_contracts.events import JobRequestedPayload
    from genhub_contracts.jobs import GenerationInput, JobSpec
    from genhub_storage.services import SpecRecorder

    app, first, second = uuid4(), uuid4(), uuid4()

    def requested(job, plan: str) -> JobRequested:
        spec = JobSpec(user_id="u", model="mock", input=GenerationInput(prompt="p"), plan=plan)
        return JobRequested.new(app_id=app, job_id=job, payload=JobRequestedPayload(spec=spec))

    for batch in (
        [requested(first, "free"), requested(second, "pro"), requested(first, "enterprise")],
        [requested(first, "basic")],  # redelivered later: the recorded spec stays
    ):
        async with UnitOfWork(db_sessions, on_commit=lambda: None) as uow:
            await SpecRecorder().record_many(batch, uow)
            await uow.commit()
    async with db_sessions() as session:
        repo = ObjectRepository(session)
        plans = [(await repo.spec(app, job)) for job in (first, second)]
        assert [p.plan if p else None for p in plans] == ["free", "pro"]
        assert await repo.spec(uuid4(), first) is None  # another app never sees it


async def test_spec_from_job_requested_drives_watermark_and_retention(db_sessions, s3) -> None:
    """job.requested recorded by the consumer path, then job.generated published from it."""
    from genhub_contracts import JobRequested
    from genhub_contracts.events import JobRequestedPayload
    from genhub_contracts.jobs import AppOptions, GenerationInput, JobSpec, Watermark
    from genhub_storage.services import SpecRecorder

    app = uuid4()
    results = {}
    for plan in ("free", "pro"):
        job = uuid4()
        spec = JobSpec(
            user_id=f"{plan}-user",
            model="mock",
            input=GenerationInput(prompt="p", output_format="webp"),
            plan=plan,
            app=AppOptions(watermark=Watermark(text="DEMO", opacity=0.8), output_retention_days=3),
        )
        async with UnitOfWork(db_sessions, on_commit=lambda: None) as uow:
            await SpecRecorder().record(
                JobRequested.new(app_id=app, job_id=job, payload=JobRequestedPayload(spec=spec)),
                uow,
            )
            await uow.commit()
        key = f"staging/{app}/{job}/0.png"
        await s3.write(key, picture((90, 90, 90)), "image/png")
        event = JobGenerated.new(
            app_id=app,
            job_id=job,
            payload=JobGeneratedPayload(
                user_id=spec.user_id,
                provider="mock",
                model="mock",
                requested_outputs=1,
                output_format="webp",
                staged=[StagedOutput(index=0, bucket=s3.bucket, key=key)],
            ),
        )
        processor = OutputProcessor(s3, OutputPolicy(LIMITS, 90))  # waits for the spec
        async with UnitOfWork(db_sessions, on_commit=lambda: None) as uow:
            await processor.complete_job(event, uow)
            await uow.commit()
        async with db_sessions() as session:
            [row] = await ObjectRepository(session).job_files(app, job)
        results[plan] = row

    free, pro = results["free"], results["pro"]
    assert free.watermark is not None and pro.watermark is None
    assert free.sha256 != pro.sha256  # same pixels in, different bytes out: one is marked
    assert free.content_type == pro.content_type == "image/webp"
    for row in (free, pro):
        lifetime = row.expires_at - row.created_at
        assert timedelta(days=3) - timedelta(minutes=1) < lifetime < timedelta(days=3, minutes=1)
    free_pixels = Image.open(io.BytesIO(await s3.read(free.key, max_bytes=10**7))).convert("RGB")
    assert free_pixels.crop((32, 24, 64, 48)).getextrema() != ((90, 90), (90, 90), (90, 90))
