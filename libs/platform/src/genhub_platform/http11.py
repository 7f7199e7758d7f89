"""A small pooled HTTP/1.1 client on asyncio streams, for hot paths that send one request and
need only the status, a header or two and the start of the answer (webhook POSTs, S3 PUTs).

Why not httpx there: at a few hundred requests a second its per-request machinery (anyio,
httpcore's pool bookkeeping, h11) cost a large share of a service's CPU. Answers are parsed and
framed by `httptools` (llhttp, Node.js's parser): status line, headers, content-length, chunked
framing, 1xx, close-delimited bodies and the keep-alive rules (~6 µs per answer against
~120-200 µs with h11 on this machine). The caller writes the request head with
`request_head` (header names and values with line breaks are refused).

- Connections are keyed by `Origin` (scheme, address, port, host name): the socket goes to
  the given address; for https, TLS SNI and certificate verification use the host name
  (ssl default context: verified chains). No redirects, no proxy from the environment.
- Keep-alive connections are pooled: at most `max_idle_per_origin` idle ones per origin,
  dropped after `idle_s`; optionally at most `max_open` requests (so connections) at once.
- An answer's body is kept up to the caller's `keep_bytes` and read (discarded) up to
  `DRAIN_BYTES` so the connection can be reused; a larger or close-delimited body closes it.
- A pooled connection the peer closed while idle is detected before use; a reused connection
  that fails before any byte of an answer is retried once on a fresh one (callers send only
  requests that are safe to repeat: idempotent PUTs, webhooks the receiver dedupes).
- `ConnectFailed` means no connection was made and nothing was sent (a next address may work).
"""

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import httptools

DRAIN_BYTES = 64 * 1024  # read (and discard) up to this much of an answer to keep the connection
MAX_HEAD_BYTES = 64 * 1024
READ_BYTES = 16 * 1024
_WRITE_TOGETHER = 64 * 1024  # smaller bodies are joined to the head in one write


class Origin(NamedTuple):
    """What a pooled connection is keyed by (a tuple: cheap to build and hash per request)."""

    scheme: str  # "http" or "https"
    address: str  # where the socket goes (an IP address or a name to resolve)
    port: int
    host: str  # TLS SNI and certificate checks


class ConnectFailed(OSError):
    """No connection to this address; nothing was sent."""


class ClosedBeforeAnswer(ConnectionError):
    """The connection closed before a complete answer."""


class ProtocolError(Exception):
    """What came back is not an HTTP/1.1 answer."""


class _Stale(Exception):
    """A reused connection failed before any byte of an answer."""


class Response:
    """Filled by httptools' callbacks; 1xx answers are skipped (Expect is never sent)."""

    __slots__ = (
        "_parser",
        "body",
        "body_size",
        "complete",
        "headers",
        "headers_done",
        "keep_alive",
        "keep_bytes",
        "oversized",
        "received",
        "status",
        "wanted",
    )

    def __init__(self, keep_bytes: int, wanted: frozenset[bytes]) -> None:
        self.keep_bytes = keep_bytes
        self.wanted = wanted
        self.status = 0
        self.headers: dict[bytes, bytes] = {}  # only the wanted ones, lowercase names
        self.body = bytearray()  # at most keep_bytes
        self.body_size = 0
        self.received = 0  # bytes of the answer that arrived
        self.headers_done = False
        self.oversized = False  # Content-Length beyond DRAIN_BYTES: keep what is wanted, close
        self.complete = False
        self.keep_alive = False
        self._parser: httptools.HttpResponseParser | None = None

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1").strip()

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in self.wanted:
            self.headers[lowered] = value
        if lowered == b"content-length" and value.strip().isdigit():
            self.oversized = int(value) > DRAIN_BYTES

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self.headers_done = self.status >= 200

    def on_body(self, chunk: bytes) -> None:
        self.body_size += len(chunk)
        if len(self.body) < self.keep_bytes:
            self.body.extend(chunk[: self.keep_bytes - len(self.body)])

    def on_message_complete(self) -> None:
        assert self._parser is not None
        if self.status < 200:  # informational: the real answer follows on the same stream
            self.headers.clear()
            self.oversized = False
            return
        self.complete = True
        self.keep_alive = bool(self._parser.should_keep_alive())

    def text(self) -> str | None:
        return self.body.decode("utf-8", errors="replace") if self.body else None


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def request_head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """`METHOD target HTTP/1.1` and the headers, as sent; the caller includes Host and
    Content-Length. A line break in a name or value raises ValueError (header injection)."""
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError("header with a line break")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class Http11Pool:
    def __init__(
        self,
        *,
        max_idle_per_origin: int = 32,
        idle_s: float = 30.0,
        max_open: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_idle = max_idle_per_origin
        self._idle_s = idle_s
        self._slots = asyncio.Semaphore(max_open) if max_open else None
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}

    def idle_count(self, origin: Origin) -> int:
        return len(self._idle.get(origin, ()))

    async def request(
        self,
        origin: Origin,
        head: bytes,
        body: bytes = b"",
        *,
        keep_bytes: int = 1024,
        keep_headers: frozenset[bytes] = frozenset(),
        timeout_s: float | None = None,
    ) -> Response:
        """Send one request and read its answer, the first `keep_bytes` of its body and the
        `keep_headers` (lowercase names) kept. Raises ConnectFailed, ClosedBeforeAnswer,
        ProtocolError, OSError (ssl.SSLError included), TimeoutError after `timeout_s` (counted
        once a `max_open` slot is free; the caller may also bound the whole call)."""
        if self._slots is None:
            if timeout_s is None:
                return await self._exchange(origin, head, body, keep_bytes, keep_headers)
            async with asyncio.timeout(timeout_s):
                return await self._exchange(origin, head, body, keep_bytes, keep_headers)
        async with self._slots, asyncio.timeout(timeout_s):
            return await self._exchange(origin, head, body, keep_bytes, keep_headers)

    async def _exchange(
        self,
        origin: Origin,
        head: bytes,
        body: bytes,
        keep_bytes: int,
        keep_headers: frozenset[bytes],
    ) -> Response:
        conn = self._take_idle(origin)
        if conn is not None:
            try:
                return await self._round_trip(origin, conn, head, body, keep_bytes, keep_headers)
            except _Stale:
                pass  # closed by the peer while idle: once more on a fresh connection
        conn = await self._connect(origin)
        return await self._round_trip(
            origin, conn, head, body, keep_bytes, keep_headers, reused=False
        )

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self, origin: Origin) -> _Connection:
        tls = origin.scheme == "https"
        try:
            reader, writer = await asyncio.open_connection(
                origin.address,
                origin.port,
                ssl=self._tls() if tls else None,
                server_hostname=origin.host if tls else None,
            )
        except ssl.SSLError:
            raise  # reached the host: a TLS problem is the request's error, not the address's
        except OSError as exc:
            raise ConnectFailed(f"ConnectError: {exc}") from exc
        return _Connection(reader, writer)

    async def _round_trip(
        self,
        origin: Origin,
        conn: _Connection,
        head: bytes,
        body: bytes,
        keep_bytes: int,
        keep_headers: frozenset[bytes],
        *,
        reused: bool = True,
    ) -> Response:
        answer = Response(keep_bytes, keep_headers)
        try:
            try:
                if len(body) < _WRITE_TOGETHER:
                    conn.writer.write(head + body)
                else:
                    conn.writer.write(head)
                    conn.writer.write(body)
                await conn.writer.drain()
                await _read_answer(conn.reader, answer)
            except ClosedBeforeAnswer:
                raise
            except ConnectionError as exc:  # reset, broken pipe
                if reused and answer.received == 0:
                    raise _Stale from exc
                raise ClosedBeforeAnswer(f"connection lost: {exc}") from exc
            if answer.received == 0:  # the peer closed without answering
                if reused:
                    raise _Stale
                raise ClosedBeforeAnswer("connection closed before an answer")
        except BaseException:
            conn.close()
            raise
        if answer.complete and answer.keep_alive:
            self._give_back(origin, conn)
        else:
            conn.close()
        return answer

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable() and now - conn.idle_since < self._idle_s:
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def aclose(self) -> None:
        pools, self._idle = self._idle, {}
        for idle in pools.values():
            for conn in idle:
                conn.close()
                with contextlib.suppress(Exception):
                    await conn.writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader, answer: Response) -> None:
    """Feed what arrives to httptools until the answer is complete, its body passes
    DRAIN_BYTES (the connection is then closed) or the peer closes (close-delimited body;
    `answer.received == 0`: the peer closed before answering)."""
    parser = httptools.HttpResponseParser(answer)
    answer._parser = parser
    while not answer.complete:
        data = await reader.read(READ_BYTES)
        if not data:
            if answer.received == 0 or answer.headers_done:
                return  # body delimited by the close (or cut short): not reusable
            raise ClosedBeforeAnswer("connection closed before a complete answer")
        answer.received += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ProtocolError(f"not an HTTP answer: {exc}") from exc
        if not answer.headers_done and answer.received > MAX_HEAD_BYTES:
            raise ProtocolError("answer headers too large")
        if answer.body_size > DRAIN_BYTES or (
            answer.oversized and len(answer.body) >= answer.keep_bytes
        ):
            return  # too much to drain: keep what is wanted, close the connection
