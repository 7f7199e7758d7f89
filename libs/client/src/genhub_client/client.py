"""Async clients: `AsyncGenhub` for apps (API key) and `AsyncGenhubAdmin` for operators."""

import asyncio
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote
from uuid import UUID

import httpx

from genhub_client.errors import GenhubError
from genhub_client.models import App, CreatedApp, Job, JobPage, UserBalance


class _Client:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self._base_url = httpx.URL(base_url.rstrip("/") + "/")
        self._timeout = timeout
        self._transport = transport
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            headers={"User-Agent": "genhub-client-python/0.1", **headers},
            timeout=timeout,
            transport=transport,
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        response = await self._http.request(
            method,
            path.lstrip("/"),
            json=json,
            params=params,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.is_error:
            raise GenhubError.from_response(response)
        return response.json() if response.content else None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _id(value: str | UUID) -> str:
    # End-user ids may hold ":" and "@"; one path segment each, whatever they contain.
    return quote(str(value), safe="")


class AsyncGenhub(_Client):
    """The public API, as one app: `async with AsyncGenhub(url, api_key) as client: ...`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, {"X-API-Key": api_key}, timeout=timeout, transport=transport)
        self._downloads: httpx.AsyncClient | None = None

    async def generate(
        self,
        user_id: str,
        model: str,
        prompt: str,
        *,
        num_outputs: int = 1,
        aspect_ratio: str = "1:1",
        webhook_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
        **params: Any,
    ) -> Job:
        """Submit a job; returns it as accepted (status "queued"). Extra keyword arguments go
        into `input` as they are (other input fields or provider parameters).

        `wait` (0 < seconds <= 60) sends `Prefer: wait`: the gateway holds the answer until the
        job ends (the full job, outputs included) or the time is up (the job as accepted). A
        job refused for lack of tokens then raises GenhubError(402, "insufficient_tokens"),
        whose `body` carries `balance` and `required`. A retried `idempotency_key` returns the
        same job."""
        body: dict[str, Any] = {
            "model": model,
            "input": {
                "prompt": prompt,
                "num_outputs": num_outputs,
                "aspect_ratio": aspect_ratio,
                **params,
            },
        }
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        if metadata is not None:
            body["metadata"] = metadata
        headers = {"X-User-ID": user_id}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        timeout: float | None = None
        if wait is not None:
            headers["Prefer"] = f"wait={wait:g}"
            timeout = max(self._timeout, wait + 10.0)  # the answer may take `wait` seconds
        return Job.model_validate(
            await self._request("POST", "v1/generate", json=body, headers=headers, timeout=timeout)
        )

    async def get_job(self, job_id: str | UUID) -> Job:
        return Job.model_validate(await self._request("GET", f"v1/jobs/{_id(job_id)}"))

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        user_id: str | None = None,
        model: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of this app's jobs, newest first (`limit` 1-100). Pass the page's
        `next_cursor` as `cursor` for the next one; it is None on the last page. Outputs in
        the list have no URL: `get_job` fetches fresh ones."""
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if user_id is not None:
            params["user_id"] = user_id
        if model is not None:
            params["model"] = model
        if cursor is not None:
            params["cursor"] = cursor
        return JobPage.model_validate(await self._request("GET", "v1/jobs", params=params))

    async def wait_for_job(
        self, job_id: str | UUID, *, timeout: float = 60.0, poll_interval: float = 0.2
    ) -> Job:
        """Poll until the job ends; raises TimeoutError if it has not within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            job = await self.get_job(job_id)
            if job.is_terminal:
                return job
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout}s")
            await asyncio.sleep(min(poll_interval, remaining))

    async def cancel_job(self, job_id: str | UUID) -> Job:
        return Job.model_validate(await self._request("POST", f"v1/jobs/{_id(job_id)}/cancel"))

    async def get_user(self, external_id: str) -> UserBalance:
        return UserBalance.model_validate(
            await self._request("GET", f"v1/users/{_id(external_id)}")
        )

    async def grant_tokens(
        self, external_id: str, amount: int, reason: str, *, idempotency_key: str | None = None
    ) -> UserBalance:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = await self._request(
            "POST",
            f"v1/users/{_id(external_id)}/tokens",
            json={"amount": amount, "reason": reason},
            headers=headers,
        )
        return UserBalance.model_validate(body)

    async def download(self, url: str) -> bytes:
        """Fetch an output. Presigned URLs point at object storage: they are fetched without
        the API key, which must never leave for another host."""
        target = httpx.URL(url)
        if not target.is_absolute_url or (
            target.scheme,
            target.host,
            target.port,
        ) == (self._base_url.scheme, self._base_url.host, self._base_url.port):
            response = await self._http.get(target)
        else:
            if self._downloads is None:
                self._downloads = httpx.AsyncClient(
                    timeout=self._timeout, transport=self._transport
                )
            response = await self._downloads.get(target)
        if response.is_error:
            raise GenhubError.from_response(response)
        return response.content

    async def aclose(self) -> None:
        if self._downloads is not None:
            await self._downloads.aclose()
        await super().aclose()


class AsyncGenhubAdmin(_Client):
    """The admin API: create apps and keys. Authenticated by the operator's admin token."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            {"Authorization": f"Bearer {admin_token}"},
            timeout=timeout,
            transport=transport,
        )

    async def create_app(
        self, name: str, slug: str, *, plan: str = "free", webhook_url: str | None = None
    ) -> CreatedApp:
        body: dict[str, Any] = {"name": name, "slug": slug, "plan": plan}
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        return CreatedApp.model_validate(await self._request("POST", "admin/apps", json=body))

    async def create_key(self, app_id: str | UUID) -> str:
        body = await self._request("POST", f"admin/apps/{_id(app_id)}/keys")
        return str(body["api_key"])

    async def list_apps(self) -> list[App]:
        body = await self._request("GET", "admin/apps")
        return [App.model_validate(app) for app in body["apps"]]

    async def update_app(self, app_id: str | UUID, **changes: Any) -> App:
        """Change `name`, `plan`, `enabled` or `webhook_url` (None clears it)."""
        return App.model_validate(
            await self._request("PATCH", f"admin/apps/{_id(app_id)}", json=changes)
        )

    async def revoke_key(self, app_id: str | UUID, key_id: str | UUID) -> None:
        await self._request("DELETE", f"admin/apps/{_id(app_id)}/keys/{_id(key_id)}")
