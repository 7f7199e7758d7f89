"""The lean HTTP/1.1 webhook client against real loopback servers (asyncio, no mocks)."""

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from genhub_notifier.adapters.http11 import Http11Sender
from genhub_notifier.adapters.webhook_sender import EXCERPT_BYTES
from genhub_platform.netguard.guard import PinnedTarget

Answer = Callable[[int], bytes]  # request number (0-based) -> raw answer bytes, b"" = hang


@dataclass
class Server:
    answer: Answer
    port: int = 0
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)
    close_after_each: bool = False
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length)
                n = len(self.requests)
                self.requests.append((head, body))
                raw = self.answer(n)
                if not raw:
                    await asyncio.sleep(30)
                writer.write(raw)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def target(self, path: str = "/hook", *addresses: str) -> PinnedTarget:
        ips = tuple(ipaddress.ip_address(a) for a in (addresses or ("127.0.0.1",)))
        return PinnedTarget(f"http://hooks.test:{self.port}{path}", "hooks.test", ips)


def ok(n: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(answer: Answer) -> Server:
        server = Server(answer)
        await server.start()
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
        result = await sender.post(server.target("/hook?a=1"), HEADERS, b'{"x":1}')
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
    result = await sender.post(server.target(), HEADERS, b"{}")
    assert result.status_code == 429 and result.retry_after == "7"
    assert result.response_excerpt == "y" * EXCERPT_BYTES
    await sender.aclose()


async def test_chunked_answers_are_read_and_the_connection_kept(serve) -> None:  # type: ignore[no-untyped-def]
    chunked = (
        b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    server = await serve(lambda n: chunked)
    sender = Http11Sender(timeout_s=5)
    for _ in range(2):
        result = await sender.post(server.target(), HEADERS, b"{}")
        assert result.status_code == 500 and result.response_excerpt == "abcde"
    assert server.connections == 1
    await sender.aclose()


async def test_connection_close_and_a_peer_that_hangs_up_between_requests(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(ok)
    server.close_after_each = True  # answers keep-alive, then closes: the pooled one is stale
    sender = Http11Sender(timeout_s=5)
    for _ in range(3):
        await asyncio.sleep(0.05)
        assert (await sender.post(server.target(), HEADERS, b"{}")).status_code == 200
    assert server.connections == 3 and len(server.requests) == 3
    closing = await serve(lambda n: b"HTTP/1.1 204 No\r\nConnection: close\r\n\r\n")
    for _ in range(2):
        assert (await sender.post(closing.target(), HEADERS, b"{}")).status_code == 204
    assert closing.connections == 2
    await sender.aclose()


async def test_falls_back_to_the_next_checked_address(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(ok)
    sender = Http11Sender(timeout_s=5)
    # Nothing listens on 127.0.0.2 at that port: refused, then the second address answers.
    result = await sender.post(server.target("/h", "127.0.0.2", "127.0.0.1"), HEADERS, b"{}")
    assert result.status_code == 200
    refused = await sender.post(server.target("/h", "127.0.0.2"), HEADERS, b"{}")
    assert refused.status_code is None and refused.error is not None
    assert refused.error.startswith("ConnectError")
    await sender.aclose()


async def test_a_silent_endpoint_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda n: b"")
    sender = Http11Sender(timeout_s=0.3)
    result = await sender.post(server.target(), HEADERS, b"{}")
    assert result.status_code is None and result.error == "timeout"
    assert 250 <= result.latency_ms < 2000
    await sender.aclose()


async def test_garbage_is_an_error_not_a_crash(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n")
    sender = Http11Sender(timeout_s=5)
    result = await sender.post(server.target(), HEADERS, b"{}")
    assert result.status_code is None and result.error is not None
    assert "not an HTTP answer" in result.error
    await sender.aclose()


async def test_informational_answers_are_skipped(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(
        lambda n: (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nRetry-After: 9\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
        )
    )
    sender = Http11Sender(timeout_s=5)
    for _ in range(2):
        result = await sender.post(server.target(), HEADERS, b"{}")
        assert result.status_code == 201 and result.response_excerpt == "done"
        assert result.retry_after is None  # a 1xx's headers are not the answer's
    assert server.connections == 1
    await sender.aclose()


async def test_a_close_delimited_answer_is_read_and_the_connection_dropped(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(lambda n: b"HTTP/1.0 503 Busy\r\nRetry-After: 3\r\n\r\nlater")
    server.close_after_each = True
    sender = Http11Sender(timeout_s=5)
    for _ in range(2):
        result = await sender.post(server.target(), HEADERS, b"{}")
        assert result.status_code == 503 and result.retry_after == "3"
        assert result.response_excerpt == "later" and result.error is None
    assert server.connections == 2  # never pooled: its end was the close
    await sender.aclose()


async def test_an_oversized_answer_gives_an_excerpt_and_a_fresh_connection(serve) -> None:  # type: ignore[no-untyped-def]
    huge = b"z" * (200 * 1024)
    server = await serve(
        lambda n: (
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(huge) + huge if n == 0 else ok(n)
        )
    )
    sender = Http11Sender(timeout_s=5)
    first = await sender.post(server.target(), HEADERS, b"{}")
    assert first.status_code == 200 and first.response_excerpt == "z" * EXCERPT_BYTES
    second = await sender.post(server.target(), HEADERS, b"{}")
    assert second.status_code == 200 and second.response_excerpt == "ok"
    assert server.connections == 2  # the unread rest of the big body was not reused
    await sender.aclose()


async def test_a_chunked_answer_beyond_the_drain_limit_is_cut_short(serve) -> None:  # type: ignore[no-untyped-def]
    chunk = b"10000\r\n" + b"q" * 0x10000 + b"\r\n"
    server = await serve(
        lambda n: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"
        )
    )
    sender = Http11Sender(timeout_s=5)
    for _ in range(2):
        result = await sender.post(server.target(), HEADERS, b"{}")
        assert result.status_code == 200 and result.response_excerpt == "q" * EXCERPT_BYTES
    assert server.connections == 2
    await sender.aclose()


async def test_headers_with_line_breaks_are_refused_before_sending(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(ok)
    sender = Http11Sender(timeout_s=5)
    with pytest.raises(ValueError):
        await sender.post(server.target(), {"x-evil": "a\r\nInjected: 1"}, b"{}")
    assert server.requests == []
    await sender.aclose()
