"""GET /internal/apps/{app_id}/jobs/{job_id}/files through the real router, fake repository."""

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from genhub_platform.errors import install_error_handlers
from genhub_storage.adapters.tables import OutputObject
from genhub_storage.handlers.http import build_router
from genhub_storage.services import FileQueries

from .storage_fakes import FakeBlobs, FakeRepo

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def obj(app_id: UUID, job_id: UUID, index: int, expires_at: datetime) -> OutputObject:
    return OutputObject(
        app_id=app_id,
        job_id=job_id,
        index=index,
        key=f"outputs/{app_id}/{job_id}/{index}.png",
        thumbnail_key=f"outputs/{app_id}/{job_id}/{index}.thumb.webp",
        size_bytes=1234 + index,
        width=64,
        height=32,
        content_type="image/png",
        sha256=f"{index:064x}",
        expires_at=expires_at,
    )


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, FakeRepo]]:
    repo = FakeRepo()

    @contextlib.asynccontextmanager
    async def readers() -> AsyncIterator[FakeRepo]:
        yield repo

    queries = FileQueries(readers, FakeBlobs(), timedelta(seconds=3600), clock=lambda: NOW)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_router(queries))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://storage") as client:
        yield client, repo


async def test_lists_files_with_fresh_urls_and_documented_fields(setup) -> None:
    client, repo = setup
    app, job = uuid4(), uuid4()
    later = NOW + timedelta(days=90)
    await repo.add_objects([obj(app, job, 1, later), obj(app, job, 0, later)])

    resp = await client.get(f"/internal/apps/{app}/jobs/{job}/files")

    assert resp.status_code == 200
    files = resp.json()["files"]
    assert [f["index"] for f in files] == [0, 1]
    first = files[0]
    assert set(first) >= {
        "index",
        "key",
        "url",
        "content_type",
        "width",
        "height",
        "bytes",
        "sha256",
        "expires_at",
    }
    assert first["key"] == f"outputs/{app}/{job}/0.png"
    assert first["url"] == f"https://s3.test/genhub/outputs/{app}/{job}/0.png?ttl=3600"
    assert (first["width"], first["height"], first["bytes"]) == (64, 32, 1234)
    assert first["content_type"] == "image/png" and first["expired"] is False
    assert datetime.fromisoformat(first["expires_at"]) == later


async def test_another_apps_job_is_not_found(setup) -> None:
    client, repo = setup
    owner, intruder, job = uuid4(), uuid4(), uuid4()
    await repo.add_objects([obj(owner, job, 0, NOW + timedelta(days=1))])

    resp = await client.get(f"/internal/apps/{intruder}/jobs/{job}/files")

    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["error"]["code"] == "not_found"
    assert str(owner) not in resp.text


async def test_unknown_job_is_not_found(setup) -> None:
    client, _ = setup
    resp = await client.get(f"/internal/apps/{uuid4()}/jobs/{uuid4()}/files")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


async def test_expired_files_are_listed_without_url(setup) -> None:
    client, repo = setup
    app, job = uuid4(), uuid4()
    await repo.add_objects(
        [
            obj(app, job, 0, NOW - timedelta(seconds=1)),
            obj(app, job, 1, NOW + timedelta(minutes=10)),
        ]
    )

    files = (await client.get(f"/internal/apps/{app}/jobs/{job}/files")).json()["files"]

    assert files[0]["expired"] is True and files[0]["url"] is None
    assert files[1]["expired"] is False
    assert files[1]["url"].endswith("?ttl=600")  # capped at the object's remaining life


async def test_malformed_ids_are_a_4xx(setup) -> None:
    client, _ = setup
    resp = await client.get("/internal/apps/not-a-uuid/jobs/also-not/files")
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"


async def test_listing_carries_thumbnail_urls(setup) -> None:
    client, repo = setup
    app, job = uuid4(), uuid4()
    await repo.add_objects([obj(app, job, 0, NOW + timedelta(days=1))])
    first = (await client.get(f"/internal/apps/{app}/jobs/{job}/files")).json()["files"][0]
    assert first["thumbnail_url"].startswith(f"https://s3.test/genhub/outputs/{app}/{job}/0.thumb")


async def test_file_url_is_fresh_and_names_the_download(setup) -> None:
    client, repo = setup
    app, job = uuid4(), uuid4()
    await repo.add_objects([obj(app, job, 0, NOW + timedelta(days=1))])

    plain = await client.get(f"/internal/apps/{app}/jobs/{job}/files/0/url")
    named = await client.get(
        f"/internal/apps/{app}/jobs/{job}/files/0/url",
        params={"download": "true", "filename": 'my "cat"\r\n.png'},
    )
    default = await client.get(
        f"/internal/apps/{app}/jobs/{job}/files/0/url", params={"download": "true"}
    )

    assert plain.status_code == 200
    assert plain.json()["url"] == f"https://s3.test/genhub/outputs/{app}/{job}/0.png?ttl=3600"
    assert datetime.fromisoformat(plain.json()["expires_at"]) == NOW + timedelta(hours=1)
    assert named.json()["url"].endswith("&download=my_cat_.png")  # header-safe name
    assert default.json()["url"].endswith(f"&download={job}-0.png")


async def test_file_url_errors(setup) -> None:
    client, repo = setup
    app, job, intruder = uuid4(), uuid4(), uuid4()
    await repo.add_objects(
        [obj(app, job, 0, NOW - timedelta(seconds=1)), obj(app, job, 1, NOW + timedelta(days=1))]
    )

    expired = await client.get(f"/internal/apps/{app}/jobs/{job}/files/0/url")
    missing = await client.get(f"/internal/apps/{app}/jobs/{job}/files/7/url")
    foreign = await client.get(f"/internal/apps/{intruder}/jobs/{job}/files/1/url")

    assert expired.status_code == 410 and expired.json()["error"]["code"] == "expired"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
