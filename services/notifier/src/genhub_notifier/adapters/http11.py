"""A lean HTTP/1.1 webhook client on asyncio streams: one POST per attempt to an address the
URL guard checked, keep-alive connections pooled per (scheme, address, port, host).

Why not httpx here: at a few hundred webhooks a second its per-request machinery (anyio,
httpcore's pool bookkeeping, h11) was a quarter of the notifier's CPU. A webhook needs much
less: write one request, read the status line, the headers and at most 1 KB of the answer.

- The connection goes to the pinned address only; the Host header and, for https, TLS SNI and
  certificate checks keep the URL's host name (ssl default context: verified chains).
- No redirects are followed, no proxy from the environment is used.
- An answer's body is read up to `DRAIN_BYTES` so the connection can be reused; a larger or
  unframed body closes the connection instead.
- A pooled connection the peer closed while idle is detected before use; a reused connection
  that fails before any byte of an answer is retried once on a fresh one (the receiver
  dedupes on webhook-id, and nothing was answered).
"""

import asyncio
import base64
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

from genhub_platform.netguard.guard import PinnedTarget

from genhub_notifier.adapters.webhook_sender import EXCERPT_BYTES, SendResult

DRAIN_BYTES = 64 * 1024  # read (and discard) up to this much of an answer to keep the connection
MAX_HEAD_BYTES = 64 * 1024
USER_AGENT = "genhub-webhooks/1"


class _ConnectFailed(Exception):
    """No connection to this address; nothing was sent (the next address may work)."""


class _StaleConnection(Exception):
    """A reused connection closed before answering."""


class _ProtocolError(Exception):
    pass


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass
class _Answer:
    status: int
    headers: dict[str, str]
    excerpt: str | None
    reusable: bool


@dataclass
class _Pool:
    idle: dict[tuple[str, str, int, str], list[_Connection]] = field(default_factory=dict)


class Http11Sender:
    def __init__(
        self,
        *,
        timeout_s: float = 15.0,
        max_idle_per_host: int = 32,
        idle_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._max_idle = max_idle_per_host
        self._idle_s = idle_s
        self._ssl = ssl_context
        self._pool = _Pool()

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def post(self, target: PinnedTarget, headers: dict[str, str], body: bytes) -> SendResult:
        """POST to the first checked address that accepts a connection; any answer ends it."""
        started = time.perf_counter()
        parts = urlsplit(target.url)
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        request = _request_bytes(path, parts, headers, body)
        error = "no address"
        try:
            async with asyncio.timeout(self._timeout_s):
                for address in target.addresses:
                    key = (parts.scheme, str(address), port, target.host)
                    try:
                        answer = await self._exchange(key, https, request)
                    except _ConnectFailed as exc:
                        error = str(exc)[:500]
                        continue
                    return SendResult(
                        answer.status,
                        _ms_since(started),
                        answer.excerpt,
                        None,
                        retry_after=answer.headers.get("retry-after"),
                    )
        except TimeoutError:
            return SendResult(None, _ms_since(started), None, "timeout")
        except (OSError, EOFError, _ProtocolError, asyncio.IncompleteReadError) as exc:
            return SendResult(None, _ms_since(started), None, f"{type(exc).__name__}: {exc}"[:500])
        return SendResult(None, _ms_since(started), None, error)

    async def _exchange(
        self, key: tuple[str, str, int, str], https: bool, request: bytes
    ) -> _Answer:
        conn = self._take_idle(key)
        if conn is not None:
            try:
                return await self._round_trip(key, conn, request, reused=True)
            except _StaleConnection:
                pass  # closed by the peer while idle: once more on a fresh connection
        conn = await self._connect(key, https)
        try:
            return await self._round_trip(key, conn, request, reused=False)
        except _StaleConnection as exc:
            raise EOFError("connection closed before an answer") from exc

    async def _connect(self, key: tuple[str, str, int, str], https: bool) -> _Connection:
        _, address, port, host = key
        try:
            reader, writer = await asyncio.open_connection(
                address,
                port,
                ssl=self._tls() if https else None,
                server_hostname=host if https else None,
                limit=MAX_HEAD_BYTES,
            )
        except ssl.SSLError:
            raise  # reached the host: a TLS problem is the attempt's error, not the address's
        except OSError as exc:
            raise _ConnectFailed(f"ConnectError: {exc}") from exc
        return _Connection(reader, writer)

    async def _round_trip(
        self, key: tuple[str, str, int, str], conn: _Connection, request: bytes, *, reused: bool
    ) -> _Answer:
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            answer = await _read_answer(conn.reader, reused=reused)
        except BaseException:
            conn.close()
            raise
        if answer.reusable:
            self._give_back(key, conn)
        else:
            conn.close()
        return answer

    def _take_idle(self, key: tuple[str, str, int, str]) -> _Connection | None:
        idle = self._pool.idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable() and now - conn.idle_since < self._idle_s:
                return conn
            conn.close()
        return None

    def _give_back(self, key: tuple[str, str, int, str], conn: _Connection) -> None:
        idle = self._pool.idle.setdefault(key, [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def aclose(self) -> None:
        for idle in self._pool.idle.values():
            for conn in idle:
                conn.close()
        self._pool.idle.clear()


def _request_bytes(path: str, parts: SplitResult, headers: dict[str, str], body: bytes) -> bytes:
    netloc = parts.netloc.rpartition("@")[2]  # Host never carries credentials
    lines = [f"POST {path} HTTP/1.1", f"Host: {netloc}", f"User-Agent: {USER_AGENT}"]
    if parts.username is not None:  # https://user:pass@host/...: HTTP Basic, as browsers do
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append("Authorization: Basic " + base64.b64encode(pair).decode("ascii"))
    for name, value in headers.items():
        if name.lower() in ("host", "content-length", "connection", "transfer-encoding"):
            continue
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError("header with a line break")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader, *, reused: bool) -> _Answer:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if reused and not exc.partial:
                raise _StaleConnection from exc
            raise
        except asyncio.LimitOverrunError as exc:
            raise _ProtocolError("answer headers too large") from exc
        status, version, headers = _parse_head(head)
        if 100 <= status < 200:
            continue  # informational (we never send Expect): the real answer follows
        break
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if status in (204, 304):
        return _Answer(status, headers, None, keep)
    data, complete = await _read_body(reader, headers)
    excerpt = bytes(data[:EXCERPT_BYTES]).decode("utf-8", errors="replace") if data else None
    return _Answer(status, headers, excerpt, keep and complete)


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/") or not code.isdigit():
        raise _ProtocolError(f"not an HTTP answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _ProtocolError("malformed header line")
        headers[name.strip().lower()] = value.strip()
    return int(code), version, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    """The answer's body up to DRAIN_BYTES, and whether it was read to its end (framed)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _ProtocolError("bad content-length")
        size = int(length)
        if size <= DRAIN_BYTES:
            return await reader.readexactly(size), True
        return await reader.readexactly(EXCERPT_BYTES), False
    # Neither: the body ends when the server closes the connection.
    data = await reader.read(DRAIN_BYTES)
    return data, False


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    data = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _ProtocolError("bad chunk size") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return bytes(data), True
        if len(data) + size > DRAIN_BYTES:
            data.extend(await reader.read(EXCERPT_BYTES))
            return bytes(data), False
        data.extend(await reader.readexactly(size))
        await reader.readexactly(2)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
