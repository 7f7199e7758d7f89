"""Notifier end to end: real Kafka events in, real HTTP webhooks out to a loopback receiver.

The local stack runs the compressed schedule NOTIFIER_RETRY_SCHEDULE="0,1,2,3,4" with ±20 %
jitter: attempts at about 0, +1, +2, +3, +4 s.
"""

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e_notifier_support import NotifierApi, Publisher, ScriptedReceiver
from e2e_support import Endpoints, eventually
from genhub_client import verify_webhook
from genhub_contracts import JobStatus
from starlette.requests import Request
from starlette.responses import Response

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def hooks() -> AsyncIterator[ScriptedReceiver]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ScriptedReceiver("127.0.0.1", port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def publisher(endpoints: Endpoints) -> AsyncIterator[Publisher]:
    async with Publisher(endpoints.kafka) as p:
        yield p


@pytest.fixture
async def notifier(endpoints: Endpoints) -> AsyncIterator[NotifierApi]:
    api = NotifierApi(endpoints.notifier)
    yield api
    await api.aclose()


async def services(action: str) -> None:
    """`deploy/local/services.sh <action> notifier` (stop sends SIGTERM and waits)."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "deploy/local/services.sh"),
        action,
        "notifier",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()


def answer_in_order(*codes: int, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    async def script(request: Request, seen: int) -> Response:
        code = codes[seen] if seen < len(codes) else 200
        return Response(status_code=code, headers=headers if code != 200 else None)

    return script


async def test_signed_retries_follow_the_compressed_schedule(
    hooks: ScriptedReceiver, publisher: Publisher, notifier: NotifierApi
) -> None:
    app = uuid.uuid4()
    _, secret = await notifier.endpoint(app, hooks.url("/retry"))
    hooks.script = answer_in_order(500, 503)
    job = await publisher.finished_job(app, JobStatus.FAILED, metadata={"order": 7}, charged=0)

    arrivals = await hooks.wait_on("/retry", 3, timeout=20)
    payloads = [verify_webhook(secret, a.hook.headers, a.hook.body) for a in arrivals]
    assert {p["type"] for p in payloads} == {"job.failed"}
    data = payloads[0]["data"]
    assert data["job_id"] == str(job) and data["metadata"] == {"order": 7}
    assert data["error"]["code"] == "provider_error" and data["tokens_charged"] == 0
    assert len({a.hook.headers["webhook-id"] for a in arrivals}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(arrivals)]
    # 1 s then 2 s, each ±20 % jitter, plus a little processing time.
    assert 0.75 <= gaps[0] <= 1.8, gaps
    assert 1.55 <= gaps[1] <= 2.9, gaps
    [entry] = await eventually(
        lambda: notifier.deliveries(app), lambda d: bool(d) and d[0]["status"] == "delivered"
    )
    assert [a["status_code"] for a in entry["attempts"]] == [500, 503, 200]


async def test_410_disables_the_endpoint_and_the_app_hears_about_it(
    hooks: ScriptedReceiver, publisher: Publisher, notifier: NotifierApi
) -> None:
    app = uuid.uuid4()
    gone_id, _ = await notifier.endpoint(app, hooks.url("/gone"))
    _, ok_secret = await notifier.endpoint(app, hooks.url("/ok"))

    async def script(request: Request, seen: int) -> Response:
        return Response(status_code=410 if request.url.path == "/gone" else 200)

    hooks.script = script
    await publisher.finished_job(app)
    arrivals = await hooks.wait_on("/ok", 2, timeout=15)
    types = sorted(verify_webhook(ok_secret, a.hook.headers, a.hook.body)["type"] for a in arrivals)
    assert types == ["endpoint.disabled", "job.failed"]
    endpoint = (await notifier.http.get(f"/internal/apps/{app}/endpoints/{gone_id}")).json()
    assert endpoint["enabled"] is False and endpoint["disabled_reason"] == "endpoint_gone"
    await asyncio.sleep(1.5)  # no retry of a 410
    assert len(hooks.on("/gone")) == 1


async def test_retry_after_is_honoured(
    hooks: ScriptedReceiver, publisher: Publisher, notifier: NotifierApi
) -> None:
    app = uuid.uuid4()
    await notifier.endpoint(app, hooks.url("/busy"))
    hooks.script = answer_in_order(429, headers={"retry-after": "3"})
    await publisher.finished_job(app, JobStatus.CANCELLED)
    first, second = await hooks.wait_on("/busy", 2, timeout=15)
    # The schedule alone would retry after ~1 s; the endpoint asked for 3.
    assert 2.9 <= second.at - first.at <= 4.5


async def test_a_killed_notifier_resumes_its_schedule_where_it_was(
    hooks: ScriptedReceiver, publisher: Publisher, notifier: NotifierApi
) -> None:
    app = uuid.uuid4()
    await notifier.endpoint(app, hooks.url("/resume"))
    hooks.script = answer_in_order(500, 500)
    await publisher.finished_job(app)
    await hooks.wait_on("/resume", 1, timeout=15)

    await services("stop")
    try:
        at_stop = len(hooks.on("/resume"))
        await asyncio.sleep(2.5)  # the next attempts fall due while it is down
        assert len(hooks.on("/resume")) == at_stop
    finally:
        await services("start")
    arrivals = await hooks.wait_on("/resume", 3, timeout=30)
    assert len({a.hook.headers["webhook-id"] for a in arrivals}) == 1
    [entry] = await eventually(
        lambda: notifier.deliveries(app), lambda d: bool(d) and d[0]["status"] == "delivered"
    )
    # Not restarted from scratch: attempt numbers continue and nothing was sent twice.
    assert [a["attempt"] for a in entry["attempts"]] == [1, 2, 3]
    assert [a["status_code"] for a in entry["attempts"]] == [500, 500, 200]
    assert len(hooks.on("/resume")) == 3


async def test_replay_delivers_again_with_the_same_webhook_id(
    hooks: ScriptedReceiver, publisher: Publisher, notifier: NotifierApi
) -> None:
    app = uuid.uuid4()
    _, secret = await notifier.endpoint(app, hooks.url("/replay"))
    await publisher.finished_job(app)
    [first] = await hooks.wait_on("/replay", 1, timeout=15)
    [entry] = await eventually(
        lambda: notifier.deliveries(app), lambda d: bool(d) and d[0]["status"] == "delivered"
    )
    response = await notifier.http.post(f"/internal/apps/{app}/deliveries/{entry['id']}/replay")
    assert response.status_code == 202
    _, again = await hooks.wait_on("/replay", 2, timeout=10)
    assert again.hook.headers["webhook-id"] == first.hook.headers["webhook-id"]
    assert again.hook.body == first.hook.body
    verify_webhook(secret, again.hook.headers, again.hook.body)


async def test_a_slow_endpoint_does_not_delay_a_fast_one(
    hooks: ScriptedReceiver, publisher: Publisher, notifier: NotifierApi
) -> None:
    app = uuid.uuid4()
    await notifier.endpoint(app, hooks.url("/slow"), ["job.failed"])
    await notifier.endpoint(app, hooks.url("/fast"), ["job.cancelled"])
    release = asyncio.Event()

    async def script(request: Request, seen: int) -> Response:
        if request.url.path == "/slow":
            await asyncio.wait_for(release.wait(), timeout=10)
        return Response(status_code=200)

    hooks.script = script
    try:
        for _ in range(12):  # more than the notifier's per-endpoint in-flight bound
            await publisher.finished_job(app, JobStatus.FAILED)
        await hooks.wait_on("/slow", 2, timeout=10)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await publisher.finished_job(app, JobStatus.CANCELLED)
        await hooks.wait_on("/fast", 1, timeout=5)
        assert loop.time() - sent < 2.0
        assert len(hooks.on("/slow")) <= 4  # the slow one holds at most its share
    finally:
        release.set()
    await hooks.wait_on("/slow", 12, timeout=20)


async def test_endpoints_and_deliveries_are_isolated_per_app(
    hooks: ScriptedReceiver, publisher: Publisher, notifier: NotifierApi
) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    endpoint_id, _ = await notifier.endpoint(mine, hooks.url("/mine"))
    await notifier.endpoint(theirs, hooks.url("/theirs"))
    job = await publisher.finished_job(mine)
    await hooks.wait_on("/mine", 1, timeout=15)
    [entry] = await eventually(lambda: notifier.deliveries(mine), bool)
    assert entry["job_id"] == str(job)

    foreign = f"/internal/apps/{theirs}"
    assert [
        e["url"] for e in (await notifier.http.get(f"{foreign}/endpoints")).json()["endpoints"]
    ] == [hooks.url("/theirs")]
    assert await notifier.deliveries(theirs) == []
    assert await notifier.deliveries(theirs, job_id=str(job)) == []
    for response in (
        await notifier.http.get(f"{foreign}/endpoints/{endpoint_id}"),
        await notifier.http.delete(f"{foreign}/endpoints/{endpoint_id}"),
        await notifier.http.get(f"{foreign}/deliveries/{entry['id']}"),
        await notifier.http.post(f"{foreign}/deliveries/{entry['id']}/replay"),
    ):
        assert response.status_code == 404
    assert hooks.on("/theirs") == []
    body = json.loads(hooks.on("/mine")[0].hook.body)
    assert body["data"]["job_id"] == str(job)
