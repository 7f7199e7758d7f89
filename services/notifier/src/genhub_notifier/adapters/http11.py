"""The service's webhook sender: one POST per attempt over the platform's pooled HTTP/1.1
client (`genhub_platform.http11`: keep-alive per (scheme, address, port, host name), answers
parsed by httptools, stale reused connections retried once — the receiver dedupes on
webhook-id).

- The connection goes to an address the URL guard checked, tried in order (the next one only
  when no connection could be made); the Host header and, for https, TLS SNI and certificate
  checks keep the URL's host name.
- No redirects are followed, no proxy from the environment is used.
- At most `EXCERPT_BYTES` of the answer are kept; `Retry-After` is reported verbatim.
"""

import asyncio
import base64
import ssl
import time
from urllib.parse import SplitResult, unquote, urlsplit

from genhub_platform.http11 import ConnectFailed, Http11Pool, Origin, ProtocolError, request_head
from genhub_platform.netguard.guard import PinnedTarget

from genhub_notifier.adapters.webhook_sender import EXCERPT_BYTES, SendResult, ms_since

USER_AGENT = "genhub-webhooks/1"
_RETRY_AFTER = frozenset({b"retry-after"})
_NOT_FORWARDED = frozenset({"host", "content-length", "connection", "transfer-encoding"})


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
        self._pool = Http11Pool(
            max_idle_per_origin=max_idle_per_host, idle_s=idle_s, ssl_context=ssl_context
        )

    async def post(self, target: PinnedTarget, headers: dict[str, str], body: bytes) -> SendResult:
        """POST to the first checked address that accepts a connection; any answer ends it."""
        started = time.perf_counter()
        parts = urlsplit(target.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        head = _post_head(parts, headers, len(body))
        error = "no address"
        try:
            async with asyncio.timeout(self._timeout_s):
                for address in target.addresses:
                    origin = Origin(parts.scheme, str(address), port, target.host)
                    try:
                        answer = await self._pool.request(
                            origin, head, body, keep_bytes=EXCERPT_BYTES, keep_headers=_RETRY_AFTER
                        )
                    except ConnectFailed as exc:
                        error = str(exc)[:500]
                        continue
                    return SendResult(
                        answer.status,
                        ms_since(started),
                        answer.text(),
                        None,
                        retry_after=answer.header(b"retry-after"),
                    )
        except TimeoutError:
            return SendResult(None, ms_since(started), None, "timeout")
        except (OSError, ProtocolError) as exc:
            return SendResult(None, ms_since(started), None, f"{type(exc).__name__}: {exc}"[:500])
        return SendResult(None, ms_since(started), None, error)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _post_head(parts: SplitResult, headers: dict[str, str], length: int) -> bytes:
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    netloc = parts.netloc.rpartition("@")[2]  # Host never carries credentials
    lines = [("Host", netloc), ("User-Agent", USER_AGENT)]
    if parts.username is not None:  # https://user:pass@host/...: HTTP Basic, as browsers do
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))
    lines.extend((n, v) for n, v in headers.items() if n.lower() not in _NOT_FORWARDED)
    lines.append(("Content-Length", str(length)))
    return request_head("POST", path, lines)
