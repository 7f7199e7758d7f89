"""The webhook sender (over the platform's HTTP/1.1 client) against real loopback servers;
the protocol itself is tested in libs/platform/tests/test_platform_http11.py."""

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from genhub_notifier.adapters.http11 import Http11Sender
from genhub_notifier.adapters.webhook_sender import EXCERPT_BYTES
from genhub_platform.netguard.guard import PinnedTarget
from genhub_platform.testing_http import Answer, LoopbackServer, ok


def target(server: LoopbackServer, path: str = "/hook", *addresses: str) -> PinnedTarget:
    ips = tuple(ipaddress.ip_address(a) for a in (addresses or ("127.0.0.1",)))
    return PinnedTarget(f"http://hooks.test:{server.port}{path}", "hooks.test", ips)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[LoopbackServer]]]:
    servers: list[LoopbackServer] = []

    async def start(answer: Answer) -> LoopbackServer:
        server = await LoopbackServer(answer).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


HEADERS = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}


async def test_posts_the_signed_request_and_reuses_the_connection(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(ok)
    sender = Http11Sender(timeout_s=5)
    for _ in range(3):
        result = await sender.post(target(server, "/hook?a=1"), HEADERS, b'{"x":1}')
        assert result.status_code == 200 and result.response_excerpt == "ok"
        assert result.error is None
    await sender.aclose()
    assert server.connections == 1  # keep-alive
    head, body = server.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook?a=1 HTTP/1.1"
    sent = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    assert sent["host"] == f"hooks.test:{server.port}"  # the name, though we dialled the address
    assert sent["webhook-id"] == "msg_1" and sent["content-length"] == "7"
    assert body == b'{"x":1}'


async def test_status_retry_after_and_a_1kb_excerpt(serve) -> None:  # type: ignore[no-untyped-def]
    big = b"y" * 5000
    server = await serve(
        lambda n: b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 5000\r\n\r\n" + big
    )
    sender = Http11Sender(timeout_s=5)
    result = await sender.post(target(server), HEADERS, b"{}")
    assert result.status_code == 429 and result.retry_after == "7"
    assert result.response_excerpt == "y" * EXCERPT_BYTES
    await sender.aclose()


async def test_falls_back_to_the_next_checked_address(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(ok)
    sender = Http11Sender(timeout_s=5)
    # Nothing listens on 127.0.0.2 at that port: refused, then the second address answers.
    result = await sender.post(target(server, "/h", "127.0.0.2", "127.0.0.1"), HEADERS, b"{}")
    assert result.status_code == 200
    refused = await sender.post(target(server, "/h", "127.0.0.2"), HEADERS, b"{}")
    assert refused.status_code is None and refused.error is not None
    assert refused.error.startswith("ConnectError")
    await sender.aclose()


async def test_a_silent_endpoint_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda n: b"")
    sender = Http11Sender(timeout_s=0.3)
    result = await sender.post(target(server), HEADERS, b"{}")
    assert result.status_code is None and result.error == "timeout"
    assert 250 <= result.latency_ms < 2000
    await sender.aclose()


async def test_garbage_is_an_error_not_a_crash(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n")
    sender = Http11Sender(timeout_s=5)
    result = await sender.post(target(server), HEADERS, b"{}")
    assert result.status_code is None and result.error is not None
    assert "not an HTTP answer" in result.error
    await sender.aclose()


async def test_headers_with_line_breaks_are_refused_before_sending(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(ok)
    sender = Http11Sender(timeout_s=5)
    with pytest.raises(ValueError):
        await sender.post(target(server), {"x-evil": "a\r\nInjected: 1"}, b"{}")
    assert server.requests == []
    await sender.aclose()


async def test_url_credentials_become_basic_auth_and_never_the_host(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(ok)
    sender = Http11Sender(timeout_s=5)
    pinned = target(server)
    with_user = PinnedTarget(
        pinned.url.replace("http://", "http://us%40er:p%3Ass@"), pinned.host, pinned.addresses
    )
    extra = {**HEADERS, "Host": "evil.test", "Connection": "close"}
    assert (await sender.post(with_user, extra, b"{}")).status_code == 200
    _, sent = server.sent_headers(0)
    assert sent["host"] == f"hooks.test:{server.port}" and sent["user-agent"] == "genhub-webhooks/1"
    assert sent["authorization"] == "Basic dXNAZXI6cDpzcw=="  # base64("us@er:p:ss")
    assert "connection" not in sent  # hop-by-hop headers are the client's, not the caller's
    await sender.aclose()


async def test_a_peer_that_closes_without_answering_is_an_attempt_error(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda n: None)
    sender = Http11Sender(timeout_s=5)
    result = await sender.post(target(server), HEADERS, b"{}")
    assert result.status_code is None and result.error is not None
    assert result.error.startswith("ClosedBeforeAnswer")
    assert len(server.requests) == 1  # a fresh connection: not sent twice
    await sender.aclose()
