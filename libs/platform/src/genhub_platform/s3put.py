"""Async S3 PUT without a worker thread: SigV4 signed locally, HTTP/1.1 over asyncio streams.

`ObjectStore.put` runs minio-py's synchronous `put_object` in a worker thread: a thread hop,
urllib3's request machinery and http.client's header parsing per object. For many small
objects (the orchestrator stages every provider output) that is most of the cost of a PUT.
`S3Putter` does only what a PUT needs, on the event loop:

- the AWS Signature V4 `Authorization` header is computed in process (the signing key is
  derived once per day; per request: one canonical request, one SHA-256, one HMAC); the
  payload hash is signed (`x-amz-content-sha256`), so the object stored is the one sent;
- keep-alive connections are pooled (at most `max_connections` open, idle ones reused); a
  reused connection the server closed meanwhile is retried once on a fresh one (a PUT is
  idempotent: the same key gets the same bytes);
- a non-2xx answer raises `S3PutError` with the HTTP status and S3's error `Code`.

Same settings as `ObjectStore` (`ObjectStoreSettings`): endpoint, TLS, region, keys, bucket.
"""

import asyncio
import contextlib
import hashlib
import hmac
import re
import ssl
import time
from urllib.parse import quote

from genhub_platform.objectstore import ObjectStoreSettings

_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"


class S3PutError(Exception):
    def __init__(self, status: int, code: str, key: str) -> None:
        super().__init__(f"PUT {key} failed: HTTP {status} {code}")
        self.status = status
        self.code = code


class _StaleConnection(Exception):
    """A reused connection closed before answering: retry on a new one."""


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class S3Putter:
    def __init__(
        self,
        settings: ObjectStoreSettings,
        *,
        max_connections: int = 16,
        timeout_s: float = 30.0,
    ) -> None:
        endpoint = settings.endpoint
        secure = settings.secure
        for scheme, is_tls in (("https://", True), ("http://", False)):
            if endpoint.startswith(scheme):
                endpoint, secure = endpoint.removeprefix(scheme), is_tls
        self.host_header = endpoint.rstrip("/")
        host, _, port = self.host_header.partition(":")
        self._host = host
        self._port = int(port) if port else (443 if secure else 80)
        self._ssl = ssl.create_default_context() if secure else None
        self.bucket = settings.bucket
        self._region = settings.region
        self._access_key = settings.access_key
        self._secret = settings.secret_key.get_secret_value()
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._key_day = ""
        self._signing_key = b""

    # --- signing -----------------------------------------------------------------------------

    def _key_for(self, day: str) -> bytes:
        if day != self._key_day:
            key = ("AWS4" + self._secret).encode()
            for part in (day, self._region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._key_day, self._signing_key = day, key
        return self._signing_key

    def request_head(
        self, path: str, payload_hash: str, content_type: str, length: int, now: float
    ) -> bytes:
        """The signed request line and headers of a PUT of `length` bytes to `path`."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = amz_date[:8]
        canonical = (
            f"PUT\n{path}\n\nhost:{self.host_header}\nx-amz-content-sha256:{payload_hash}\n"
            f"x-amz-date:{amz_date}\n\n{_SIGNED_HEADERS}\n{payload_hash}"
        )
        scope = f"{day}/{self._region}/s3/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(self._key_for(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return (
            f"PUT {path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
            f"x-amz-content-sha256: {payload_hash}\r\nx-amz-date: {amz_date}\r\n"
            f"Authorization: AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
            f"SignedHeaders={_SIGNED_HEADERS}, Signature={signature}\r\n\r\n"
        ).encode()

    # --- I/O ---------------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` at `key` in the bucket (overwrites). Raises S3PutError, OSError."""
        path = "/" + quote(self.bucket, safe="") + "/" + quote(key, safe="/~")
        head = self.request_head(
            path, hashlib.sha256(data).hexdigest(), content_type, len(data), time.time()
        )
        async with self._slots, asyncio.timeout(self._timeout_s):
            for attempt in range(2):
                reused = attempt == 0 and bool(self._idle)  # a retry never reuses
                conn = self._idle.pop() if reused else await self._connect()
                try:
                    status, body, keep = await self._exchange(conn, head, data, reused)
                except _StaleConnection:
                    self._close(conn)
                    continue
                except BaseException:
                    self._close(conn)
                    raise
                if keep:
                    self._idle.append(conn)
                else:
                    self._close(conn)
                if 200 <= status < 300:
                    return
                match = _CODE.search(body)
                raise S3PutError(status, match.group(1).decode() if match else "", key)
            raise ConnectionError(f"PUT {key}: the connection closed before an answer")

    async def _connect(self) -> _Connection:
        return await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None
        )

    @staticmethod
    async def _exchange(
        conn: _Connection, head: bytes, data: bytes, reused: bool
    ) -> tuple[int, bytes, bool]:
        reader, writer = conn
        try:
            writer.write(head + data if len(data) < 65536 else head)
            if len(data) >= 65536:
                writer.write(data)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if reused:
                raise _StaleConnection from exc
            raise ConnectionError("the object store closed the connection") from exc
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        keep = True
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                keep = False
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            body = await _read_chunked(reader)
        else:
            body = await reader.readexactly(length) if length else b""
        return status, body, keep

    @staticmethod
    def _close(conn: _Connection) -> None:
        with contextlib.suppress(Exception):
            conn[1].close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._close(conn)
            with contextlib.suppress(Exception):
                await conn[1].wait_closed()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers from S3: the final CRLF
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
