"""Storage's internal API: fresh presigned URLs for a job's outputs."""

from uuid import UUID

import httpx

from genhub_notifier.domain.body import OutputRef


class StorageUnavailable(Exception):
    """Storage could not answer (down, error, or the files are not there yet): retry later."""


class StorageClient:
    def __init__(self, base_url: str, *, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(base_url=base_url, timeout=10.0)

    async def job_files(self, app_id: UUID, job_id: UUID) -> list[OutputRef]:
        try:
            response = await self._client.get(f"/internal/apps/{app_id}/jobs/{job_id}/files")
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"storage request failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise StorageUnavailable(f"storage answered {response.status_code}")
        try:
            return [
                OutputRef(
                    index=int(f["index"]),
                    url=str(f["url"]),
                    content_type=str(f["content_type"]),
                    width=int(f["width"]),
                    height=int(f["height"]),
                )
                for f in response.json()["files"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageUnavailable("storage answered an unexpected body") from exc

    async def aclose(self) -> None:
        await self._client.aclose()
