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
POLICY = OutputPolicy(ImageLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000), 90)


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
        f"outputs/{app}/{job}/0.png",
        f"outputs/{app}/{job}/1.png",
    ]
    assert [(o.width, o.height) for o in p.outputs] == [(32, 24), (40, 20)]
    for out in p.outputs:
        data, content_type = blobs.objects[out.key]
        assert content_type == out.content_type == "image/png"
        assert out.bytes == len(data)
        assert Image.open(io.BytesIO(data)).format == "PNG"
    assert not any(k.startswith("staging/") for k in blobs.objects)
    rows = await repo.job_files(app, job)
    assert [r.index for r in rows] == [0, 1]
    assert all(r.expires_at == NOW + timedelta(days=90) for r in rows)
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
