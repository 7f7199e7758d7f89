"""OutputProcessor with in-memory fakes: the saga's success, failure and replay paths."""

import io
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from genhub_contracts import ErrorCode, JobCompleted, JobGenerated, JobStatus, StagedOutput
from genhub_contracts.events import JobGeneratedPayload
from genhub_storage.domain.images import ImageLimits
from genhub_storage.services import OutputPolicy, OutputProcessor
from PIL import Image

from .storage_fakes import FakeBlobs, FakeRepo, FakeUow
from .storage_imagefactory import jpeg_with_exif, png_header_only, png_with_metadata

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
# spec_wait 0: a job whose job.requested was never seen is published with deployment defaults.
POLICY = OutputPolicy(
    ImageLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000), 90, spec_wait=timedelta(0)
)


def generated(
    app_id: UUID, job_id: UUID, staged: list[StagedOutput], fmt: str = "png"
) -> JobGenerated:
    return JobGenerated.new(
        app_id=app_id,
        job_id=job_id,
        payload=JobGeneratedPayload(
            user_id="user-1",
            provider="mock",
            model="mock",
            requested_outputs=max(1, len(staged)),
            output_format=fmt,
            staged=staged,
            attempts=2,
        ),
    )


def stage(blobs: FakeBlobs, app_id: UUID, job_id: UUID, index: int, data: bytes) -> StagedOutput:
    key = f"staging/{app_id}/{job_id}/{index}.png"
    blobs.objects[key] = (data, "image/png")
    return StagedOutput(index=index, bucket=blobs.bucket, key=key, content_type="image/png")


@pytest.fixture
def env() -> tuple[FakeBlobs, FakeRepo, OutputProcessor]:
    blobs, repo = FakeBlobs(), FakeRepo()
    processor = OutputProcessor(blobs, POLICY, repo_for=lambda _: repo, clock=lambda: NOW)
    return blobs, repo, processor


async def run(processor: OutputProcessor, event: JobGenerated) -> list[Any]:
    uow = FakeUow()
    await processor.complete_job(event, uow)  # type: ignore[arg-type]
    return uow.published


async def test_success_publishes_outputs_records_rows_and_spends_claim_checks(env) -> None:
    blobs, repo, processor = env
    app, job = uuid4(), uuid4()
    staged = [
        stage(blobs, app, job, 0, png_with_metadata((32, 24))),
        stage(blobs, app, job, 1, jpeg_with_exif((40, 20))),
    ]

    published = await run(processor, generated(app, job, staged, fmt="jpeg"))

    assert len(published) == 1
    done = published[0]
    assert isinstance(done, JobCompleted)
    assert (done.app_id, done.job_id) == (app, job)
    p = done.payload
    assert p.status == JobStatus.SUCCEEDED and p.error is None
    assert (p.user_id, p.provider, p.attempts, p.requested_outputs) == ("user-1", "mock", 2, 2)
    assert [o.key for o in p.outputs] == [
        f"outputs/{app}/{job}/0.jpg",
        f"outputs/{app}/{job}/1.jpg",
    ]
    assert [(o.width, o.height) for o in p.outputs] == [(32, 24), (40, 20)]
    for out in p.outputs:
        data, content_type = blobs.objects[out.key]
        assert content_type == out.content_type == "image/jpeg"
        assert out.bytes == len(data)
        assert Image.open(io.BytesIO(data)).format == "JPEG"
    for index in (0, 1):
        thumb, thumb_type = blobs.objects[f"outputs/{app}/{job}/{index}.thumb.webp"]
        assert thumb_type == "image/webp" and Image.open(io.BytesIO(thumb)).format == "WEBP"
    assert not any(k.startswith("staging/") for k in blobs.objects)
    rows = await repo.job_files(app, job)
    assert [r.index for r in rows] == [0, 1]
    assert all(r.expires_at == NOW + timedelta(days=90) for r in rows)
    assert all(r.user_id == "user-1" and r.watermark is None for r in rows)
    assert rows[0].sha256 == p.outputs[0].sha256


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not an image at all", "not_an_image"),
        (png_header_only(5000, 5000), "too_many_pixels"),
        (png_with_metadata((64, 64))[:-40], "corrupt_image"),
        (b"x" * (3 * 1024 * 1024), "too_many_bytes"),
    ],
)
async def test_bad_output_fails_the_job_and_records_nothing(env, data: bytes, reason: str) -> None:
    blobs, repo, processor = env
    app, job = uuid4(), uuid4()
    staged = [stage(blobs, app, job, 0, png_with_metadata()), stage(blobs, app, job, 1, data)]

    published = await run(processor, generated(app, job, staged))

    assert len(published) == 1
    p = published[0].payload
    assert p.status == JobStatus.FAILED and p.outputs == []
    assert p.error.code == ErrorCode.INVALID_OUTPUT
    assert reason in p.error.message and "output 1" in p.error.message
    assert await repo.job_files(app, job) == []
    assert not any(k.startswith("outputs/") for k in blobs.objects)  # the good one not written


async def test_missing_staged_object_fails_the_job(env) -> None:
    _blobs, _repo, processor = env
    app, job = uuid4(), uuid4()
    ghost = StagedOutput(index=0, bucket="genhub", key=f"staging/{app}/{job}/0.png")

    published = await run(processor, generated(app, job, [ghost]))

    p = published[0].payload
    assert p.status == JobStatus.FAILED and "missing" in p.error.message


async def test_claim_check_into_another_tenants_staging_is_refused(env) -> None:
    blobs, _repo, processor = env
    app, job, other_app = uuid4(), uuid4(), uuid4()
    foreign = stage(blobs, other_app, job, 0, png_with_metadata())

    published = await run(processor, generated(app, job, [foreign]))

    assert published[0].payload.status == JobStatus.FAILED
    assert foreign.key in blobs.objects  # untouched


async def test_replay_under_a_new_event_id_completes_nothing_twice(env) -> None:
    blobs, repo, processor = env
    app, job = uuid4(), uuid4()
    staged = [stage(blobs, app, job, 0, png_with_metadata())]
    assert len(await run(processor, generated(app, job, staged))) == 1

    assert await run(processor, generated(app, job, staged)) == []
    assert len(await repo.job_files(app, job)) == 1


async def test_lost_commit_after_staged_delete_adopts_the_written_output(env) -> None:
    """Crash window: outputs written and staged deleted, but the transaction never committed."""
    blobs, _, processor = env
    app, job = uuid4(), uuid4()
    staged = [stage(blobs, app, job, 0, png_with_metadata((32, 24)))]
    event = generated(app, job, staged)
    first = await run(processor, event)

    # Redelivery against a fresh (rolled back) database, same object storage.
    retry = OutputProcessor(blobs, POLICY, repo_for=lambda _: FakeRepo(), clock=lambda: NOW)
    second = await run(retry, event)

    assert second[0].payload.status == JobStatus.SUCCEEDED
    assert second[0].payload.outputs == first[0].payload.outputs


# -- spec from job.requested: watermark, retention, dpi ---------------------------------------


def requested(app_id: UUID, job_id: UUID, plan: str, *, watermark: bool = True, **input_kw: Any):
    from genhub_contracts import JobRequested
    from genhub_contracts.events import JobRequestedPayload
    from genhub_contracts.jobs import AppOptions, GenerationInput, JobSpec, Watermark

    app_options = AppOptions(
        watermark=Watermark(text="genhub free", position="bottom-right", opacity=0.5)
        if watermark
        else None,
        output_retention_days=7,
    )
    spec = JobSpec(
        user_id="user-1",
        model="mock",
        input=GenerationInput(prompt="a cat", **input_kw),
        plan=plan,
        app=app_options,
    )
    return JobRequested.new(app_id=app_id, job_id=job_id, payload=JobRequestedPayload(spec=spec))


def grey_png(size: tuple[int, int] = (200, 120)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("plan", "app_wants", "marked"),
    [("free", True, True), ("pro", True, False), ("basic", True, False), ("free", False, False)],
)
async def test_watermark_only_for_free_users_of_apps_that_ask(
    env, plan: str, app_wants: bool, marked: bool
) -> None:
    from genhub_storage.services import SpecRecorder

    blobs, repo, processor = env
    app, job = uuid4(), uuid4()
    await SpecRecorder(repo_for=lambda _: repo).record(
        requested(app, job, plan, watermark=app_wants), FakeUow()
    )  # type: ignore[arg-type]
    staged = [stage(blobs, app, job, 0, grey_png())]

    done = (await run(processor, generated(app, job, staged)))[0].payload

    data = blobs.objects[done.outputs[0].key][0]
    pixels = Image.open(io.BytesIO(data)).convert("RGB")
    plain = ((90, 90),) * 3
    assert (pixels.crop((100, 60, 200, 120)).getextrema() != plain) is marked
    assert pixels.crop((0, 0, 100, 60)).getextrema() == plain  # top-left untouched
    row = (await repo.job_files(app, job))[0]
    assert (row.watermark is not None) is marked
    assert row.expires_at == NOW + timedelta(days=7)  # the app's retention from the spec


async def test_pdf_uses_the_spec_dpi(env) -> None:
    from genhub_storage.services import SpecRecorder

    blobs, repo, processor = env
    app, job = uuid4(), uuid4()
    await SpecRecorder(repo_for=lambda _: repo).record(
        requested(app, job, "pro", dpi=300), FakeUow()
    )  # type: ignore[arg-type]
    staged = [stage(blobs, app, job, 0, grey_png((600, 300)))]

    done = (await run(processor, generated(app, job, staged, fmt="pdf")))[0].payload

    out = done.outputs[0]
    assert out.key.endswith("/0.pdf") and out.content_type == "application/pdf"
    data = blobs.objects[out.key][0]
    assert b"/MediaBox [ 0 0 144" in data  # 600 px / 300 dpi * 72 pt


async def test_generated_before_requested_waits_then_uses_defaults() -> None:
    from genhub_storage.services.outputs import SpecPending

    blobs, repo = FakeBlobs(), FakeRepo()
    app, job = uuid4(), uuid4()
    event = generated(app, job, [stage(blobs, app, job, 0, grey_png())])
    waiting = OutputProcessor(
        blobs,
        OutputPolicy(POLICY.limits, 90, spec_wait=timedelta(seconds=30)),
        repo_for=lambda _: repo,
        clock=lambda: event.occurred_at + timedelta(seconds=5),
    )
    with pytest.raises(SpecPending):  # a ConnectionError: the consumer redelivers
        await run(waiting, event)
    assert repo.outcomes == {}

    late = OutputProcessor(
        blobs,
        OutputPolicy(POLICY.limits, 90, spec_wait=timedelta(seconds=30)),
        repo_for=lambda _: repo,
        clock=lambda: event.occurred_at + timedelta(seconds=31),
    )
    done = (await run(late, event))[0].payload
    assert done.status == JobStatus.SUCCEEDED
    row = (await repo.job_files(app, job))[0]
    assert row.watermark is None  # unknown plan: never watermarked
    assert row.expires_at == event.occurred_at + timedelta(seconds=31) + timedelta(days=90)


# -- dedupe and cache hits ----------------------------------------------------------------------


async def test_identical_bytes_are_stored_once_per_app(env) -> None:
    blobs, repo, processor = env
    app, other_app = uuid4(), uuid4()
    job1, job2, job3 = uuid4(), uuid4(), uuid4()
    first = (await run(processor, generated(app, job1, [stage(blobs, app, job1, 0, grey_png())])))[
        0
    ].payload
    second = (await run(processor, generated(app, job2, [stage(blobs, app, job2, 0, grey_png())])))[
        0
    ].payload
    third = (
        await run(
            processor,
            generated(other_app, job3, [stage(blobs, other_app, job3, 0, grey_png())]),
        )
    )[0].payload

    assert second.outputs[0].key == first.outputs[0].key == f"outputs/{app}/{job1}/0.png"
    assert second.outputs[0].sha256 == first.outputs[0].sha256
    assert f"outputs/{app}/{job2}/0.png" not in blobs.objects  # not written twice
    assert third.outputs[0].key == f"outputs/{other_app}/{job3}/0.png"  # never across apps
    rows = [await repo.job_files(app, j) for j in (job1, job2)]
    assert rows[0][0].key == rows[1][0].key and rows[0][0].thumbnail_key == rows[1][0].thumbnail_key
    assert (app, first.outputs[0].sha256) in repo.locks


async def test_cache_hit_references_the_cached_output_without_deleting_it(env) -> None:
    blobs, repo, processor = env
    app, cached_job, job = uuid4(), uuid4(), uuid4()
    source = (
        await run(
            processor, generated(app, cached_job, [stage(blobs, app, cached_job, 0, grey_png())])
        )
    )[0].payload.outputs[0]
    hit = generated(app, job, [StagedOutput(index=0, bucket="genhub", key=source.key)])
    hit = hit.model_copy(update={"payload": hit.payload.model_copy(update={"cache_hit": True})})
    before = dict(blobs.objects)

    done = (await run(processor, hit))[0].payload

    assert done.status == JobStatus.SUCCEEDED and done.cache_hit is True
    assert done.outputs[0].key == source.key and done.outputs[0].sha256 == source.sha256
    assert blobs.objects == before  # nothing copied, nothing deleted
    assert (await repo.job_files(app, job))[0].key == source.key


async def test_cache_hit_in_another_format_is_rendered_for_the_new_job(env) -> None:
    blobs, _repo, processor = env
    app, cached_job, job = uuid4(), uuid4(), uuid4()
    source = (
        await run(
            processor, generated(app, cached_job, [stage(blobs, app, cached_job, 0, grey_png())])
        )
    )[0].payload.outputs[0]
    hit = generated(app, job, [StagedOutput(index=0, bucket="genhub", key=source.key)], "webp")
    hit = hit.model_copy(update={"payload": hit.payload.model_copy(update={"cache_hit": True})})

    done = (await run(processor, hit))[0].payload

    assert done.outputs[0].key == f"outputs/{app}/{job}/0.webp"
    assert source.key in blobs.objects


async def test_cache_hit_cannot_reach_another_apps_output(env) -> None:
    blobs, _repo, processor = env
    owner, thief, job0, job = uuid4(), uuid4(), uuid4(), uuid4()
    source = (
        await run(processor, generated(owner, job0, [stage(blobs, owner, job0, 0, grey_png())]))
    )[0].payload.outputs[0]
    hit = generated(thief, job, [StagedOutput(index=0, bucket="genhub", key=source.key)])
    hit = hit.model_copy(update={"payload": hit.payload.model_copy(update={"cache_hit": True})})

    done = (await run(processor, hit))[0].payload

    assert done.status == JobStatus.FAILED and done.error.code == ErrorCode.INVALID_OUTPUT
    assert source.key in blobs.objects
