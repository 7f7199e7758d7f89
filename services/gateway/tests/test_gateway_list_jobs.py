"""`GET /v1/jobs` against the real test database: keyset pagination, filters, tenant isolation,
cursor errors, and the client's `list_jobs`."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_client import AsyncGenhub, JobPage
from genhub_gateway.domain.cursor import InvalidCursor, decode_cursor, encode_cursor
from sqlalchemy import text

ADMIN = {"Authorization": "Bearer test-admin-token"}
BODY = {"model": "mock", "input": {"prompt": "a red fox"}}
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def create_tenant(http: httpx.AsyncClient, slug: str) -> dict[str, Any]:
    response = await http.post("/admin/apps", headers=ADMIN, json={"name": slug, "slug": slug})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def submit(http: httpx.AsyncClient, key: str, user: str = "u1") -> str:
    response = await http.post(
        "/v1/generate", headers={"X-API-Key": key, "X-User-ID": user}, json=BODY
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def execute(app: FastAPI, sql: str, **params: Any) -> None:
    async with app.state.runtime.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def set_job(app: FastAPI, job_id: str, created_at: datetime, model: str = "mock") -> None:
    await execute(
        app,
        "UPDATE jobs SET created_at = :at, model = :model WHERE job_id = :id",
        at=created_at,
        model=model,
        id=job_id,
    )


async def list_page(
    http: httpx.AsyncClient, key: str, expect: int = 200, **params: Any
) -> dict[str, Any]:
    response = await http.get("/v1/jobs", headers={"X-API-Key": key}, params=params)
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def walk(
    http: httpx.AsyncClient, key: str, cursor: str | None = None, **params: Any
) -> list[list[str]]:
    pages: list[list[str]] = []
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = await list_page(http, key, **params, **extra)
        pages.append([job["job_id"] for job in body["jobs"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100


# --- the cursor (pure) ------------------------------------------------------------------------


def test_cursor_round_trips_and_is_opaque() -> None:
    job_id = uuid.uuid4()
    at = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    cursor = encode_cursor(at, job_id)
    assert "=" not in cursor and str(job_id) not in cursor
    assert decode_cursor(cursor) == (at, job_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm90IGpzb24",  # "not json"
        "WzEsMl0",  # [1,2]
        "WyJ4IiwieSJd",  # ["x","y"]
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIl0",
        "A" * 300,
    ],
)
def test_malformed_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


# --- against the database -------------------------------------------------------------------


@pytest.mark.usefixtures("clean_db")
async def test_pages_walk_every_job_exactly_once_newest_first(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    key = (await create_tenant(http, "acme"))["api_key"]
    ids = [await submit(http, key) for _ in range(8)]
    # Three jobs share a timestamp, so the tie-break by job id is exercised across pages.
    stamps = [T0 + timedelta(minutes=i) for i in range(5)] + [T0 + timedelta(minutes=9)] * 3
    for job_id, at in zip(ids, stamps, strict=True):
        await set_job(app, job_id, created_at=at)

    pages = await walk(http, key, limit=3)
    assert [len(p) for p in pages] == [3, 3, 2]
    seen = [job_id for page in pages for job_id in page]
    assert sorted(seen) == sorted(ids) and len(set(seen)) == len(ids)
    expected = sorted(ids[5:]) + list(reversed(ids[:5]))
    assert seen == expected

    # A page exactly filling the list has no next page.
    assert (await list_page(http, key, limit=8))["next_cursor"] is None
    assert len((await list_page(http, key))["jobs"]) == 8


@pytest.mark.usefixtures("clean_db")
async def test_jobs_inserted_between_pages_do_not_shift_them(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    key = (await create_tenant(http, "acme"))["api_key"]
    ids = [await submit(http, key) for _ in range(5)]
    for i, job_id in enumerate(ids):
        await set_job(app, job_id, created_at=T0 + timedelta(minutes=i))
    first = await list_page(http, key, limit=2)
    newer = await submit(http, key)  # created now: newer than every job above
    rest = await walk(http, key, limit=2, cursor=first["next_cursor"])
    seen = [j["job_id"] for j in first["jobs"]] + [j for page in rest for j in page]
    assert seen == list(reversed(ids))
    assert newer not in seen


@pytest.mark.usefixtures("clean_db")
async def test_filters(app: FastAPI, http: httpx.AsyncClient, upstreams: Any) -> None:
    key = (await create_tenant(http, "acme"))["api_key"]
    a = await submit(http, key, user="alice")
    b = await submit(http, key, user="bob")
    c = await submit(http, key, user="alice")
    await set_job(app, a, created_at=T0)
    await set_job(app, b, created_at=T0 + timedelta(hours=1), model="other")
    outputs = json.dumps([{"index": 0, "content_type": "image/png", "width": 8, "height": 8}])
    await execute(
        app,
        "UPDATE jobs SET status = 'succeeded', outputs = CAST(:o AS jsonb),"
        " created_at = :at WHERE job_id = :id",
        o=outputs,
        at=T0 + timedelta(hours=2),
        id=c,
    )
    upstreams.files[c] = [{"index": 0, "url": "https://objects.example.com/x.png"}]

    def ids(body: dict[str, Any]) -> list[str]:
        return [job["job_id"] for job in body["jobs"]]

    assert ids(await list_page(http, key)) == [c, b, a]
    assert ids(await list_page(http, key, status="succeeded")) == [c]
    assert ids(await list_page(http, key, status="queued")) == [b, a]
    assert ids(await list_page(http, key, status="failed")) == []
    assert ids(await list_page(http, key, user_id="alice")) == [c, a]
    assert ids(await list_page(http, key, model="other")) == [b]
    assert ids(await list_page(http, key, user_id="alice", status="queued")) == [a]
    after = (T0 + timedelta(hours=1)).isoformat()
    assert ids(await list_page(http, key, created_after=after)) == [c, b]
    assert ids(await list_page(http, key, created_before=after)) == [a]
    assert ids(await list_page(http, key, created_after="2026-01-01T12:30:00")) == [c, b]
    assert ids(await list_page(http, key, user_id="alice", limit=1, status="succeeded")) == [c]

    # The list never asks storage: the succeeded job's output is listed without a URL.
    upstreams.requests.clear()
    [listed] = (await list_page(http, key, status="succeeded"))["jobs"]
    assert listed["outputs"] == [
        {
            "index": 0,
            "url": None,
            "content_type": "image/png",
            "width": 8,
            "height": 8,
            "bytes": None,
        }
    ]
    assert upstreams.requests == []
    single = (await http.get(f"/v1/jobs/{c}", headers={"X-API-Key": key})).json()
    assert single["outputs"][0]["url"] == "https://objects.example.com/x.png"
    assert {k: v for k, v in single.items() if k != "outputs"} == {
        k: v for k, v in listed.items() if k != "outputs"
    }


@pytest.mark.usefixtures("clean_db")
async def test_another_apps_jobs_never_appear(app: FastAPI, http: httpx.AsyncClient) -> None:
    key_a = (await create_tenant(http, "acme"))["api_key"]
    key_b = (await create_tenant(http, "globex"))["api_key"]
    mine = {await submit(http, key_a, user="u1") for _ in range(3)}
    theirs = {await submit(http, key_b, user="u1") for _ in range(4)}
    for key, expected in ((key_a, mine), (key_b, theirs)):
        seen = {j for page in await walk(http, key, limit=2) for j in page}
        assert seen == expected
        seen = {j for page in await walk(http, key, limit=2, user_id="u1") for j in page}
        assert seen == expected
    # B's cursor used by A moves A's own list; it never reveals B's jobs.
    cursor = (await list_page(http, key_b, limit=1))["next_cursor"]
    assert cursor is not None
    crossed = await list_page(http, key_a, cursor=cursor)
    assert {j["job_id"] for j in crossed["jobs"]} <= mine


@pytest.mark.usefixtures("clean_db")
async def test_bad_cursor_and_filters_are_422(http: httpx.AsyncClient) -> None:
    key = (await create_tenant(http, "acme"))["api_key"]
    await submit(http, key)
    for cursor in ("garbage!", "bm90IGpzb24", "A" * 300):
        body = await list_page(http, key, expect=422, cursor=cursor)
        assert body["error"]["code"] == "invalid_cursor"
    bad: list[dict[str, Any]] = [
        {"status": "done"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"created_after": "yesterday"},
        {"created_before": "2026-13-01"},
        {"user_id": "bad id"},
        {"model": "m" * 65},
    ]
    for params in bad:
        body = await list_page(http, key, expect=422, **params)
        assert body["error"]["code"] == "validation_error", params
    response = await http.get("/v1/jobs")
    assert response.status_code == 401


@pytest.mark.usefixtures("clean_db")
async def test_client_list_jobs(app: FastAPI, http: httpx.AsyncClient) -> None:
    key = (await create_tenant(http, "acme"))["api_key"]
    ids = [await submit(http, key, user="u:1") for _ in range(3)]
    other = await submit(http, key, user="u:2")
    for i, job_id in enumerate([*ids, other]):
        await set_job(app, job_id, created_at=T0 + timedelta(minutes=i))
    transport = httpx.ASGITransport(app=app)
    async with AsyncGenhub("http://gateway", key, transport=transport) as client:
        first = await client.list_jobs(user_id="u:1", status="queued", model="mock", limit=2)
        assert isinstance(first, JobPage)
        assert [j.job_id for j in first.jobs] == [ids[2], ids[1]]
        assert first.next_cursor is not None
        second = await client.list_jobs(user_id="u:1", limit=2, cursor=first.next_cursor)
        assert [j.job_id for j in second.jobs] == [ids[0]]
        assert second.next_cursor is None
        assert len((await client.list_jobs()).jobs) == 4
