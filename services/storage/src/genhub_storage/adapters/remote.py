"""Fetch a tenant-supplied image URL without becoming an SSRF proxy.

Every hop (the URL and each redirect) goes through genhub_platform.netguard: the host is resolved,
every address checked, and the connection made to a checked address (pinned), so DNS cannot
swap in a private address between the check and the connection. Redirects are followed by hand,
a few at most; the body is read up to a byte cap; the whole fetch has a deadline.
"""

import asyncio
from urllib.parse import urljoin

import httpx
from genhub_platform.netguard import PinnedTarget, ResolutionFailed, UrlGuard, UrlRefused

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchRefused(Exception):
    """The URL (or a redirect) may not be fetched: SSRF rules, scheme, too many redirects."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FetchFailed(Exception):
    """The remote did not give us an image body (network error, timeout, non-2xx)."""


class FetchTooLarge(Exception):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the remote body is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


class RemoteFetcher:
    def __init__(
        self,
        guard: UrlGuard,
        *,
        timeout_s: float = 10.0,
        max_redirects: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._guard = guard
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        # trust_env=False: no proxy from the environment may reroute a pinned request.
        self._client = httpx.AsyncClient(
            timeout=timeout_s, follow_redirects=False, trust_env=False, transport=transport
        )

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._follow(url, max_bytes)
        except TimeoutError as exc:
            raise FetchFailed(f"timed out after {self._timeout_s:g} s") from exc

    async def _follow(self, url: str, max_bytes: int) -> bytes:
        for _ in range(self._max_redirects + 1):
            try:
                target = await self._guard.check(url)
            except UrlRefused as exc:
                raise FetchRefused(exc.code, exc.message) from exc
            except ResolutionFailed as exc:
                raise FetchFailed(str(exc)) from exc
            response = await self._get(target)
            try:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed(f"redirect {response.status_code} without Location")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise FetchFailed(f"remote answered {response.status_code}")
                return await _read_capped(response, max_bytes)
            finally:
                await response.aclose()
        raise FetchRefused("too_many_redirects", f"more than {self._max_redirects} redirects")

    async def _get(self, target: PinnedTarget) -> httpx.Response:
        """GET from the first checked address that accepts a connection."""
        original = httpx.URL(target.url)
        error: Exception | None = None
        for address in target.addresses:
            request = self._client.build_request(
                "GET",
                original.copy_with(host=str(address)),
                headers={
                    "host": original.netloc.decode("ascii"),
                    "user-agent": "genhub-storage/1",
                    "accept": "image/png, image/jpeg, image/webp",
                },
                # TLS SNI and certificate checks use the name, not the pinned address.
                extensions={"sni_hostname": target.host} if original.scheme == "https" else {},
            )
            try:
                return await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                error = exc  # nothing was sent: try the next address
            except httpx.HTTPError as exc:
                raise FetchFailed(f"{type(exc).__name__}: {exc}") from exc
        raise FetchFailed(f"cannot connect: {error}")

    async def aclose(self) -> None:
        await self._client.aclose()


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLarge(max_bytes)
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise FetchTooLarge(max_bytes)
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{type(exc).__name__}: {exc}") from exc
    return bytes(body)
