"""The pooled HTTP/1.1 client against real loopback servers (asyncio, plain and TLS; no mocks)."""

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from genhub_platform.http11 import (
    ClosedBeforeAnswer,
    ConnectFailed,
    Http11Pool,
    Origin,
    ProtocolError,
    request_head,
)
from genhub_platform.testing_http import Answer, LoopbackServer, ok

Serve = Callable[..., Awaitable[LoopbackServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[LoopbackServer] = []

    async def start(answer: Answer, ssl_context: ssl.SSLContext | None = None) -> LoopbackServer:
        server = await LoopbackServer(answer, ssl_context).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def origin(server: LoopbackServer, address: str = "127.0.0.1", scheme: str = "http") -> Origin:
    return Origin(scheme, address, server.port, "hooks.test")


def post(body: bytes = b"{}") -> bytes:
    return request_head(
        "POST", "/hook", [("Host", "hooks.test"), ("Content-Length", str(len(body)))]
    )


async def test_request_head_and_keep_alive_reuse(serve: Serve) -> None:
    server = await serve(ok)
    pool = Http11Pool()
    for _ in range(3):
        answer = await pool.request(origin(server), post(b'{"x":1}'), b'{"x":1}')
        assert answer.status == 200 and answer.text() == "ok" and answer.keep_alive
    assert server.connections == 1 and pool.idle_count(origin(server)) == 1
    line, sent = server.sent_headers(0)
    assert line == "POST /hook HTTP/1.1" and sent["host"] == "hooks.test"
    assert server.requests[0][1] == b'{"x":1}'
    await pool.aclose()


async def test_only_wanted_headers_and_the_body_up_to_the_cap_are_kept(serve: Serve) -> None:
    big = b"y" * 5000
    server = await serve(
        lambda n: (
            b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nX-Other: 1\r\nContent-Length: 5000\r\n\r\n"
            + big
        )
    )
    pool = Http11Pool()
    answer = await pool.request(
        origin(server), post(), b"{}", keep_bytes=100, keep_headers=frozenset({b"retry-after"})
    )
    assert answer.status == 429 and answer.header(b"retry-after") == "7"
    assert answer.header(b"x-other") is None and bytes(answer.body) == b"y" * 100
    assert answer.body_size == 5000 and answer.complete  # drained: the connection is kept
    assert pool.idle_count(origin(server)) == 1
    await pool.aclose()


async def test_chunked_answers_are_read_and_the_connection_kept(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    server = await serve(lambda n: chunked)
    pool = Http11Pool()
    for _ in range(2):
        answer = await pool.request(origin(server), post(), b"{}")
        assert answer.status == 500 and answer.text() == "abcde"
    assert server.connections == 1
    await pool.aclose()


async def test_a_stale_pooled_connection_is_retried_once_on_a_fresh_one(serve: Serve) -> None:
    server = await serve(ok)
    server.close_after_each = True  # answers keep-alive, then closes: the pooled one is stale
    pool = Http11Pool()
    for _ in range(3):
        await asyncio.sleep(0.05)
        assert (await pool.request(origin(server), post(), b"{}")).status == 200
    assert server.connections == 3 and len(server.requests) == 3
    # A pooled connection that looks alive but whose peer closes it on the next request.
    dropping = await serve(lambda n: None if n == 1 else ok(n))
    assert (await pool.request(origin(dropping), post(), b"{}")).status == 200
    assert (await pool.request(origin(dropping), post(), b"{}")).status == 200
    assert len(dropping.requests) == 3 and dropping.connections == 2  # sent again, fresh
    closing = await serve(lambda n: b"HTTP/1.1 204 No\r\nConnection: close\r\n\r\n")
    for _ in range(2):
        assert (await pool.request(origin(closing), post(), b"{}")).status == 204
    assert closing.connections == 2
    await pool.aclose()


async def test_a_connection_closed_within_the_head_is_an_error(serve: Serve) -> None:
    server = await serve(lambda n: b"HTTP/1.1 200 OK\r\nContent-Le")
    server.close_after_each = True
    pool = Http11Pool()
    with pytest.raises(ClosedBeforeAnswer):
        await pool.request(origin(server), post(), b"{}")
    assert len(server.requests) == 1  # not repeated: a fresh connection, part of an answer
    # a body cut short by the close still gives the answer (not reused)
    server.answer = lambda n: b"HTTP/1.1 500 Oops\r\nContent-Length: 10\r\n\r\nshort"
    answer = await pool.request(origin(server), post(), b"{}")
    assert answer.status == 500 and answer.text() == "short" and not answer.complete
    assert pool.idle_count(origin(server)) == 0
    await pool.aclose()


async def test_connect_failures_garbage_and_injection(serve: Serve) -> None:
    server = await serve(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n")
    pool = Http11Pool()
    with pytest.raises(ConnectFailed):  # nothing listens on 127.0.0.2 at that port
        await pool.request(origin(server, "127.0.0.2"), post(), b"{}")
    with pytest.raises(ProtocolError, match="not an HTTP answer"):
        await pool.request(origin(server), post(), b"{}")
    with pytest.raises(ValueError):
        request_head("POST", "/", [("x-evil", "a\r\nInjected: 1")])
    await pool.aclose()


async def test_informational_answers_are_skipped(serve: Serve) -> None:
    server = await serve(
        lambda n: (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nRetry-After: 9\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
        )
    )
    pool = Http11Pool()
    for _ in range(2):
        answer = await pool.request(
            origin(server), post(), b"{}", keep_headers=frozenset({b"retry-after"})
        )
        assert answer.status == 201 and answer.text() == "done"
        assert answer.header(b"retry-after") is None  # a 1xx's headers are not the answer's
    assert server.connections == 1
    await pool.aclose()


async def test_a_close_delimited_answer_is_read_and_the_connection_dropped(serve: Serve) -> None:
    server = await serve(lambda n: b"HTTP/1.0 503 Busy\r\nRetry-After: 3\r\n\r\nlater")
    server.close_after_each = True
    pool = Http11Pool()
    for _ in range(2):
        answer = await pool.request(origin(server), post(), b"{}")
        assert answer.status == 503 and answer.text() == "later"
    assert server.connections == 2  # never pooled: its end was the close
    await pool.aclose()


async def test_an_oversized_answer_is_cut_short_and_not_reused(serve: Serve) -> None:
    huge = b"z" * (200 * 1024)
    chunk = b"10000\r\n" + b"q" * 0x10000 + b"\r\n"
    server = await serve(
        lambda n: (
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(huge) + huge
            if n == 0
            else b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"
            if n == 1
            else ok(n)
        )
    )
    pool = Http11Pool()
    first = await pool.request(origin(server), post(), b"{}", keep_bytes=1024)
    assert first.status == 200 and first.text() == "z" * 1024
    second = await pool.request(origin(server), post(), b"{}", keep_bytes=1024)
    assert second.status == 200 and second.text() == "q" * 1024
    third = await pool.request(origin(server), post(), b"{}")
    assert third.text() == "ok"
    assert server.connections == 3  # the unread rest of a big body was never reused
    await pool.aclose()


async def test_large_bodies_idle_expiry_and_the_bounds(serve: Serve) -> None:
    server = await serve(ok)
    pool = Http11Pool(max_idle_per_origin=1, idle_s=0.2, max_open=2)
    big = bytes(range(256)) * 1000
    head = request_head("PUT", "/x", [("Host", "h"), ("Content-Length", str(len(big)))])
    answers = await asyncio.gather(*(pool.request(origin(server), head, big) for _ in range(4)))
    assert [a.status for a in answers] == [200] * 4
    assert all(body == big for _, body in server.requests)
    assert server.most_open == 2  # max_open: never more than two at once
    assert pool.idle_count(origin(server)) == 1  # max_idle_per_origin
    await asyncio.sleep(0.3)
    before = server.connections
    await pool.request(origin(server), post(), b"{}")
    assert server.connections == before + 1  # the idle one expired
    await pool.aclose()


def _tls_pair(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for hooks.test and a client context
    trusting it (default verification: chain and host name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context(cafile=str(tmp / "cert.pem"))
    return server, client


async def test_tls_uses_the_host_name_for_sni_and_verification(
    serve: Serve, tmp_path: Path
) -> None:
    server_ctx, client_ctx = _tls_pair(tmp_path)
    names: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment, func-returns-value]
    server = await serve(ok, server_ctx)
    pool = Http11Pool(ssl_context=client_ctx)
    address = str(ipaddress.ip_address("127.0.0.1"))
    answer = await pool.request(origin(server, address, "https"), post(), b"{}")
    assert answer.status == 200 and names == ["hooks.test"]  # dialled the address, named the host
    wrong = Origin("https", address, server.port, "other.test")
    with pytest.raises(ssl.SSLCertVerificationError):
        await pool.request(wrong, post(), b"{}")
    untrusted = Http11Pool()  # the system's CAs do not know this certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        await untrusted.request(origin(server, address, "https"), post(), b"{}")
    await pool.aclose()
    await untrusted.aclose()
