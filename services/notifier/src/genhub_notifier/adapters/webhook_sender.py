"""POSTs a signed webhook to the address the URL guard pinned, and reports what happened."""

import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from genhub_platform.netguard.guard import PinnedTarget

EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None
    retry_after: str | None = None  # the endpoint's `Retry-After` header, verbatim


class Sender(Protocol):
    """What the dispatcher needs: one POST to a pinned target, and closing at shutdown."""

    async def post(
        self, target: PinnedTarget, headers: dict[str, str], body: bytes
    ) -> SendResult: ...

    async def aclose(self) -> None: ...


class WebhookSender:
    """httpx-based sender: takes any httpx transport (the DB tests script receivers with
    `httpx.MockTransport`). The service itself runs `adapters.http11.Http11Sender`."""

    def __init__(
        self,
        *,
        timeout_s: float = 15.0,
        max_connections: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # trust_env=False: no proxy from the environment may reroute a pinned request.
        # Every open connection may stay alive: httpx keeps only 20 idle by default, so with
        # more endpoints busy at once each request beyond that paid a connect and a close.
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )

    async def post(self, target: PinnedTarget, headers: dict[str, str], body: bytes) -> SendResult:
        """POST to the first checked address that accepts a connection (like a browser would
        fall back from IPv6 to IPv4); a response of any status ends the attempt."""
        started = time.perf_counter()
        error = "no address"
        for address in target.addresses:
            try:
                return await self._post_to(target, str(address), headers, body, started)
            except httpx.ConnectError as exc:
                error = f"ConnectError: {exc}"[:500]  # nothing was sent: try the next address
            except httpx.TimeoutException:
                return SendResult(None, ms_since(started), None, "timeout")
            except httpx.HTTPError as exc:
                return SendResult(
                    None, ms_since(started), None, f"{type(exc).__name__}: {exc}"[:500]
                )
        return SendResult(None, ms_since(started), None, error)

    async def _post_to(
        self,
        target: PinnedTarget,
        address: str,
        headers: dict[str, str],
        body: bytes,
        started: float,
    ) -> SendResult:
        original = httpx.URL(target.url)
        # Connect to the checked address, not a fresh DNS answer; Host and TLS SNI keep the name
        # so virtual hosts and certificate checks work as with the original URL.
        request = self._client.build_request(
            "POST",
            original.copy_with(host=address),
            headers={
                **headers,
                "host": original.netloc.decode("ascii"),
                "user-agent": "genhub-webhooks/1",
            },
            content=body,
            extensions={"sni_hostname": target.host} if original.scheme == "https" else {},
        )
        response = await self._client.send(request, stream=True)
        try:
            excerpt = await _read_excerpt(response)
        finally:
            await response.aclose()
        return SendResult(
            response.status_code,
            ms_since(started),
            excerpt,
            None,
            retry_after=response.headers.get("retry-after"),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


async def _read_excerpt(response: httpx.Response) -> str | None:
    """At most 1 KB of the receiver's answer; never the whole body of a chatty endpoint."""
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer.extend(chunk)
        if len(buffer) >= EXCERPT_BYTES:
            break
    if not buffer:
        return None
    return bytes(buffer[:EXCERPT_BYTES]).decode("utf-8", errors="replace")


def ms_since(started: float) -> int:
    """Milliseconds since a `time.perf_counter()` reading."""
    return int((time.perf_counter() - started) * 1000)
