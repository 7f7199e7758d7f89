"""The handler path against the real local MinIO (bucket from S3_BUCKET, default genhub).

Keys live under this run's random app/job ids and are removed afterwards.
"""

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlparse
from uuid import uuid4

import httpx
import pytest
from genhub_contracts import JobGenerated, JobStatus, StagedOutput
from genhub_contracts.events import JobGeneratedPayload
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from genhub_storage.adapters.blobs import BlobStore, ObjectTooLarge
from genhub_storage.domain.images import ImageLimits
from genhub_storage.services import OutputPolicy, OutputProcessor
from PIL import Image

from .storage_fakes import FakeRepo, FakeUow
from .storage_imagefactory import jpeg_with_exif, png_with_metadata
from .storage_infra import require


@pytest.fixture
async def store() -> AsyncIterator[ObjectStore]:
    settings = ObjectStoreSettings()
    endpoint = urlparse(f"//{settings.endpoint.split('://')[-1]}")
    require(endpoint.hostname or "127.0.0.1", endpoint.port or 9000, "MinIO")
    store = ObjectStore(settings)
    await store.ensure_bucket()
    created: list[str] = []
    store.created = created  # type: ignore[attr-defined]
    yield store
    for key in created:
        await store.delete(key)


async def test_handler_path_writes_output_and_deletes_staged(store: ObjectStore) -> None:
    app, job = uuid4(), uuid4()
    staged_keys = [f"staging/{app}/{job}/0.png", f"staging/{app}/{job}/1.png"]
    output_keys = [f"outputs/{app}/{job}/0.png", f"outputs/{app}/{job}/1.png"]
    store.created.extend(staged_keys + output_keys)  # type: ignore[attr-defined]
    await store.put(staged_keys[0], png_with_metadata((48, 32)), "image/png")
    await store.put(staged_keys[1], jpeg_with_exif((30, 30)), "image/jpeg")
    event = JobGenerated.new(
        app_id=app,
        job_id=job,
        payload=JobGeneratedPayload(
            user_id="u1",
            provider="mock",
            model="mock",
            requested_outputs=2,
            output_format="png",
            staged=[
                StagedOutput(index=i, bucket=store.bucket, key=k) for i, k in enumerate(staged_keys)
            ],
        ),
    )
    blobs = BlobStore(store)
    processor = OutputProcessor(
        blobs,
        OutputPolicy(ImageLimits(25 * 1024 * 1024, 40_000_000), 90, spec_wait=timedelta(0)),
        repo_for=lambda _: FakeRepo(),
    )
    uow = FakeUow()

    await processor.complete_job(event, uow)  # type: ignore[arg-type]

    assert [e.payload.status for e in uow.published] == [JobStatus.SUCCEEDED]
    outputs = uow.published[0].payload.outputs
    for key in staged_keys:
        assert await store.stat(key) is None  # claim check spent
    for out, key in zip(outputs, output_keys, strict=True):
        assert out.key == key
        stat = await store.stat(key)
        assert stat is not None and stat.size == out.bytes
        assert stat.content_type == "image/png"
        data = await store.get(key)
        assert b"secret prompt" not in data and b"SneakyCam" not in data
        assert Image.open(io.BytesIO(data)).size == (out.width, out.height)

    # The presigned URL really serves the object.
    url = blobs.presign_get(output_keys[0], timedelta(minutes=5))
    async with httpx.AsyncClient() as client:
        resp = await client.get(url)
    assert resp.status_code == 200
    assert resp.content == await store.get(output_keys[0])


async def test_blobstore_missing_and_oversized_objects(store: ObjectStore) -> None:
    blobs = BlobStore(store)
    key = f"staging/{uuid4()}/{uuid4()}/0.png"
    store.created.append(key)  # type: ignore[attr-defined]
    assert await blobs.read(key, max_bytes=100) is None
    await store.put(key, b"x" * 101, "application/octet-stream")
    with pytest.raises(ObjectTooLarge):
        await blobs.read(key, max_bytes=100)
    assert await blobs.read(key, max_bytes=101) == b"x" * 101
    assert await blobs.ping()
