"""What every HTTP provider adapter shares: configuration, error classification, downloads.

Classification (the same for every provider unless the adapter knows better first):
- 429 → retryable, with the Retry-After header (seconds or an HTTP date) when present;
- 408, 5xx, connection errors → retryable; client timeouts → `provider_timeout` (retryable);
- 400/404/413/422 → terminal `invalid_input` (the request itself is wrong);
- 401/403 → retryable `provider_error` (our credentials: another route may serve the job);
- a 2xx body we cannot read → terminal `invalid_output`.
Each adapter first checks its provider's moderation signals → terminal `content_rejected`.
"""

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from genhub_contracts import ErrorCode

from genhub_orchestrator.domain.providers import (
    GeneratedImage,
    InputImage,
    ProviderError,
    ProviderTimeout,
    RetryableProviderError,
    TerminalProviderError,
)

log = logging.getLogger(__name__)

MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
_ERROR_EXCERPT = 300


@dataclass(frozen=True)
class ProviderConfig:
    """One provider's connection settings: from the catalog row and the environment."""

    name: str
    base_url: str
    api_key: str
    request_timeout_s: float = 60.0
    poll_interval_s: float = 1.0
    max_wait_s: float = 300.0  # queued providers: give up waiting after this long
    settings: Mapping[str, Any] = field(default_factory=dict)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def excerpt(response: httpx.Response) -> str:
    try:
        text = response.text
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        text = ""
    return " ".join(text.split())[:_ERROR_EXCERPT]


def classify_status(response: httpx.Response, provider: str) -> ProviderError | None:
    """The generic meaning of a non-2xx status (None for 2xx)."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    detail = f"{provider} answered {status}: {excerpt(response)}"
    if status == 429:
        return RetryableProviderError(
            ErrorCode.PROVIDER_ERROR,
            detail,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )
    if status == 408 or status >= 500:
        return RetryableProviderError(
            ErrorCode.PROVIDER_ERROR,
            detail,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )
    if status in (401, 403):
        return RetryableProviderError(ErrorCode.PROVIDER_ERROR, detail)
    return TerminalProviderError(ErrorCode.INVALID_INPUT, detail)


def json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    """A JSON object body, or a terminal `invalid_output` error."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TerminalProviderError(
            ErrorCode.INVALID_OUTPUT, f"{provider} sent a body that is not JSON: {exc}"
        ) from exc
    if not isinstance(body, dict):
        raise TerminalProviderError(
            ErrorCode.INVALID_OUTPUT, f"{provider} sent JSON that is not an object"
        )
    return body


def error_json(response: httpx.Response) -> dict[str, Any]:
    """An error body as a dict when it is one (error bodies are often not JSON at all)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def malformed(provider: str, what: str) -> TerminalProviderError:
    return TerminalProviderError(ErrorCode.INVALID_OUTPUT, f"{provider} response malformed: {what}")


def decode_b64(data: Any, provider: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise malformed(provider, "image data missing")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise malformed(provider, "image data is not base64") from exc


def sniff_content_type(data: bytes, default: str = "image/png") -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return default


def data_uri(image: InputImage) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"


def nearest_aspect_ratio(width: int, height: int, choices: list[str]) -> str:
    """The supported ratio closest to width:height (for providers with a fixed list)."""
    target = width / height

    def distance(choice: str) -> float:
        w, _, h = choice.partition(":")
        return abs(int(w) / int(h) - target)

    return min(choices, key=distance)


class HttpProvider:
    """Base of the HTTP adapters: one pooled client, request/poll helpers, error mapping."""

    name: str

    def __init__(
        self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.name = config.name
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            timeout=httpx.Timeout(
                config.request_timeout_s, connect=min(10.0, config.request_timeout_s)
            ),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP call with transport errors mapped; the status is left to the caller."""
        try:
            return await self._client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"{self.name} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise RetryableProviderError(
                ErrorCode.PROVIDER_ERROR, f"{self.name} unreachable: {type(exc).__name__}"
            ) from exc

    def raise_for_status(self, response: httpx.Response) -> None:
        error = classify_status(response, self.name)
        if error is not None:
            raise error

    async def download(self, url: str) -> GeneratedImage:
        """An output image by URL (or a data: URI), size-capped."""
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            content_type = header[5:].split(";")[0] or "image/png"
            return GeneratedImage(decode_b64(payload, self.name), content_type)
        response = await self.request("GET", url)
        if response.status_code != 200:
            raise RetryableProviderError(
                ErrorCode.PROVIDER_ERROR,
                f"{self.name} output download answered {response.status_code}",
            )
        data = response.content
        if not data or len(data) > MAX_DOWNLOAD_BYTES:
            raise malformed(self.name, f"output of {len(data)} bytes")
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        if not content_type.startswith("image/"):
            content_type = sniff_content_type(data)
        return GeneratedImage(data, content_type)

    def deadline(self) -> float:
        return time.monotonic() + self.config.max_wait_s

    async def wait_poll(self, deadline: float, task_id: str) -> None:
        if time.monotonic() >= deadline:
            raise ProviderTimeout(
                f"{self.name} task {task_id} not done after {self.config.max_wait_s:.0f}s",
                task_id=task_id,
            )
        await asyncio.sleep(self.config.poll_interval_s)


async def cancel_quietly(coro: Any, timeout_s: float = 5.0) -> None:
    """Send a provider cancel call on the way out of a cancelled task; never raise."""
    try:
        await asyncio.wait_for(asyncio.shield(coro), timeout=timeout_s)
    except BaseException as exc:  # best effort: the job is already cancelled
        log.info("provider cancel call failed: %s", type(exc).__name__)
