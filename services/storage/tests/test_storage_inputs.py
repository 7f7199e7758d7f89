"""Uploads and URL imports through the real router, real PostgreSQL and real MinIO.

SSRF cases use an injected resolver (a hostname that resolves to a private address) and an
httpx transport standing in for the remote server (a redirect to a private address): the guard
must refuse before any byte is fetched from a refused address.
"""

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from genhub_platform.errors import install_error_handlers
from genhub_platform.netguard import UrlGuard
from genhub_storage.adapters.remote import RemoteFetcher
from genhub_storage.domain.images import ImageLimits
from genhub_storage.handlers.http import build_router
from genhub_storage.main import repositories
from genhub_storage.services import FileQueries, InputPolicy, InputStore
from PIL import Image

from .storage_imagefactory import jpeg_with_exif, png_header_only, png_with_metadata

MAX_BYTES = 200_000
PUBLIC_IP = "93.184.216.34"


def make_client(
    db_sessions, s3, fetcher: RemoteFetcher
) -> Callable[[], AsyncIterator[httpx.AsyncClient]]:
    inputs = InputStore(
        repositories(db_sessions),
        s3,
        fetcher,
        InputPolicy(ImageLimits(MAX_BYTES, 1_000_000), timedelta(hours=24)),
    )
    queries = FileQueries(repositories(db_sessions), s3, timedelta(hours=1))
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_router(queries, inputs))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://storage")


def resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


def remote(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


@pytest.fixture
async def client(db_sessions, s3) -> AsyncIterator[httpx.AsyncClient]:
    fetcher = RemoteFetcher(UrlGuard(allow_private=False, require_https=True))
    async with make_client(db_sessions, s3, fetcher) as c:
        yield c


async def test_upload_sniffs_type_strips_metadata_and_is_scoped_to_the_app(client, s3) -> None:
    app, other = uuid4(), uuid4()
    source = jpeg_with_exif((40, 20))

    resp = await client.post(
        f"/internal/apps/{app}/uploads?filename=cat.png",
        content=source,
        headers={"content-type": "image/png"},  # a lie: the bytes are JPEG
    )

    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["key"].startswith(f"inputs/{app}/") and body["key"].endswith(".jpg")
    assert (body["content_type"], body["width"], body["height"]) == ("image/jpeg", 40, 20)
    stored = await s3.read(body["key"], max_bytes=MAX_BYTES)
    assert stored is not None and len(stored) == body["bytes"]
    assert b"SneakyCam" not in stored and not Image.open(io.BytesIO(stored)).getexif()
    assert body["expires_at"] and body["sha256"]

    got = await client.get(f"/internal/apps/{app}/uploads/{body['key']}")
    assert got.status_code == 200 and got.json()["key"] == body["key"]
    for url in (
        f"/internal/apps/{other}/uploads/{body['key']}",  # another tenant
        f"/internal/apps/{app}/uploads/inputs/{app}/{uuid4()}.png",  # unknown
    ):
        missing = await client.get(url)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"x" * (MAX_BYTES + 1), 413, "payload_too_large"),
        (b"<html>not an image</html>", 415, "unsupported_media_type"),
        (png_with_metadata((64, 64))[:-40], 422, "invalid_image"),
        (png_header_only(5000, 5000), 422, "image_too_large"),
        (b"", 422, "invalid_image"),
    ],
)
async def test_bad_uploads_are_refused_with_stable_codes(
    client, s3, data: bytes, status: int, code: str
) -> None:
    app = uuid4()
    resp = await client.post(f"/internal/apps/{app}/uploads", content=data)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["error"]["code"] == code
    assert await s3.list(f"inputs/{app}/") == []  # nothing stored


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/cat.png",
        "https://[::1]/cat.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/cat.png",
        "http://images.example.com/cat.png",  # https only outside the local stack
        "file:///etc/passwd",
    ],
)
async def test_imports_refuse_private_targets_and_plain_http(client, url: str) -> None:
    resp = await client.post(f"/internal/apps/{uuid4()}/imports", json={"url": url})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "url_refused"


async def test_import_refuses_a_hostname_that_resolves_to_a_private_address(
    db_sessions, s3
) -> None:
    fetched: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, content=png_with_metadata())

    guard = UrlGuard(
        allow_private=False,
        require_https=True,
        resolver=resolver({"sneaky.example.com": [PUBLIC_IP, "192.168.1.10"]}),
    )
    async with make_client(db_sessions, s3, RemoteFetcher(guard, transport=remote(server))) as c:
        resp = await c.post(
            f"/internal/apps/{uuid4()}/imports", json={"url": "https://sneaky.example.com/a.png"}
        )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "url_refused"
    assert "private" in resp.json()["error"]["message"]
    assert fetched == []  # never connected


async def test_import_refuses_a_redirect_to_a_private_address(db_sessions, s3) -> None:
    fetched: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        fetched.append(f"{request.url.host} {request.headers['host']}")
        return httpx.Response(302, headers={"location": "https://metadata.internal/creds"})

    guard = UrlGuard(
        allow_private=False,
        require_https=True,
        resolver=resolver(
            {"images.example.com": [PUBLIC_IP], "metadata.internal": ["169.254.169.254"]}
        ),
    )
    async with make_client(db_sessions, s3, RemoteFetcher(guard, transport=remote(server))) as c:
        resp = await c.post(
            f"/internal/apps/{uuid4()}/imports", json={"url": "https://images.example.com/a.png"}
        )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "url_refused"
    # Only the first hop was fetched, at the pinned public address with the original Host.
    assert fetched == [f"{PUBLIC_IP} images.example.com"]


async def test_import_follows_a_public_redirect_and_caps_the_size(db_sessions, s3) -> None:
    image = png_with_metadata((30, 20))

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            return httpx.Response(301, headers={"location": "/final.png"})
        if request.url.path == "/huge":
            return httpx.Response(200, content=b"x" * (MAX_BYTES + 10))
        return httpx.Response(200, content=image)

    guard = UrlGuard(
        allow_private=False,
        require_https=True,
        resolver=resolver({"images.example.com": [PUBLIC_IP]}),
    )
    app = uuid4()
    async with make_client(db_sessions, s3, RemoteFetcher(guard, transport=remote(server))) as c:
        ok = await c.post(
            f"/internal/apps/{app}/imports", json={"url": "https://images.example.com/start"}
        )
        huge = await c.post(
            f"/internal/apps/{app}/imports", json={"url": "https://images.example.com/huge"}
        )
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["key"].startswith(f"inputs/{app}/") and (body["width"], body["height"]) == (30, 20)
    assert body["source_url"] == "https://images.example.com/start"
    stored = await s3.read(body["key"], max_bytes=MAX_BYTES)
    assert stored is not None and b"secret prompt" not in stored
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"


async def test_import_over_the_real_network_from_minio(db_sessions, s3) -> None:
    """The local profile (private addresses allowed, http allowed) fetching a real URL."""
    key = f"outputs/{uuid4()}/{uuid4()}/0.png"
    await s3.write(key, png_with_metadata((12, 8)), "image/png")
    url = s3.presign_get(key, timedelta(minutes=5))
    fetcher = RemoteFetcher(UrlGuard(allow_private=True, require_https=False))
    app = uuid4()
    async with make_client(db_sessions, s3, fetcher) as c:
        resp = await c.post(f"/internal/apps/{app}/imports", json={"url": url})
        metadata = await c.post(
            f"/internal/apps/{app}/imports", json={"url": "http://169.254.169.254/x"}
        )
    assert resp.status_code == 201, resp.text
    assert (resp.json()["width"], resp.json()["height"]) == (12, 8)
    # Metadata addresses stay refused even when private addresses are allowed.
    assert metadata.status_code == 422 and metadata.json()["error"]["code"] == "url_refused"


async def test_import_gives_up_after_the_timeout(db_sessions, s3) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=b"late")

    guard = UrlGuard(
        allow_private=False,
        require_https=True,
        resolver=resolver({"slow.example.com": [PUBLIC_IP]}),
    )
    fetcher = RemoteFetcher(guard, timeout_s=0.3, transport=httpx.MockTransport(slow))
    async with make_client(db_sessions, s3, fetcher) as c:
        resp = await c.post(
            f"/internal/apps/{uuid4()}/imports", json={"url": "https://slow.example.com/a.png"}
        )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "fetch_failed"
    assert "timed out" in resp.json()["error"]["message"]


async def test_erase_and_sweep_over_http(db_sessions, s3) -> None:
    from genhub_storage.config import Settings
    from genhub_storage.main import build_lifecycle

    life = build_lifecycle(Settings(), db_sessions, s3)
    inputs = InputStore(
        repositories(db_sessions),
        s3,
        RemoteFetcher(UrlGuard(allow_private=False, require_https=True)),
        InputPolicy(ImageLimits(MAX_BYTES, 1_000_000), timedelta(hours=24)),
    )
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(
        build_router(FileQueries(repositories(db_sessions), s3, timedelta(hours=1)), inputs, life)
    )
    tenant, bystander = uuid4(), uuid4()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://storage"
    ) as c:
        mine = (
            await c.post(
                f"/internal/apps/{tenant}/uploads?user_id=alice", content=png_with_metadata()
            )
        ).json()
        theirs = (
            await c.post(f"/internal/apps/{bystander}/uploads", content=png_with_metadata())
        ).json()

        erased = await c.post(f"/internal/apps/{tenant}/erase", json={"user_id": "alice"})
        swept = await c.post("/internal/sweep")
        bad = await c.post(f"/internal/apps/{tenant}/erase", json={"user_id": ""})

        assert erased.status_code == 200 and erased.json() == {"objects_deleted": 1}
        gone = await c.get(f"/internal/apps/{tenant}/uploads/{mine['key']}")
        kept = await c.get(f"/internal/apps/{bystander}/uploads/{theirs['key']}")
    assert gone.status_code == 404 and kept.status_code == 200
    assert swept.status_code == 200 and set(swept.json()) >= {"files_deleted", "objects_deleted"}
    assert bad.status_code == 422
