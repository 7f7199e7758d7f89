"""Input images for image-to-image: storage keys of this app's uploads, or remote URLs that
storage imports for us (SSRF-checked there) before we read the bytes from object storage."""

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

import httpx
from genhub_contracts import ErrorCode

from genhub_orchestrator.adapters.providers.http import sniff_content_type
from genhub_orchestrator.domain.providers import InputImage, TerminalProviderError

MAX_INPUT_BYTES = 20 * 1024 * 1024


class ObjectReader(Protocol):
    async def get(self, key: str, *, max_bytes: int | None = None) -> bytes: ...


class InputFetcher:
    def __init__(
        self,
        store: ObjectReader,
        storage_url: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._storage_url = storage_url.rstrip("/")
        self._timeout_s = timeout_s
        self._transport = transport

    async def fetch(self, app_id: UUID, refs: Sequence[str]) -> tuple[InputImage, ...]:
        images = []
        for ref in refs:
            key = (
                await self._import(app_id, ref) if ref.startswith(("http://", "https://")) else ref
            )
            if not key.startswith(f"inputs/{app_id}/"):
                raise TerminalProviderError(
                    ErrorCode.INVALID_INPUT, f"input image {ref!r} is not one of this app's uploads"
                )
            try:
                data = await self._store.get(key, max_bytes=MAX_INPUT_BYTES)
            except Exception as exc:
                raise TerminalProviderError(
                    ErrorCode.INVALID_INPUT,
                    f"input image {key!r} cannot be read ({type(exc).__name__})",
                ) from exc
            images.append(InputImage(data, sniff_content_type(data), key))
        return tuple(images)

    async def _import(self, app_id: UUID, url: str) -> str:
        async with httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport) as client:
            response = await client.post(
                f"{self._storage_url}/internal/apps/{app_id}/imports", json={"url": url}
            )
        if response.status_code != 201:
            raise TerminalProviderError(
                ErrorCode.INVALID_INPUT,
                f"input image URL refused by storage ({response.status_code})",
            )
        return str(response.json()["key"])
