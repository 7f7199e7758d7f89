"""Async clients: `AsyncGenhub` for apps (API key) and `AsyncGenhubAdmin` for operators."""

import asyncio
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote
from uuid import UUID

import httpx

from genhub_client.errors import GenhubError
from genhub_client.models import (
    App,
    AuditPage,
    CreatedApp,
    CreatedKey,
    GrantResult,
    Job,
    JobPage,
    Model,
    Upload,
    UserBalance,
)


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
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        content: bytes | None = None,
    ) -> Any:
        if params is not None:
            params = {k: v for k, v in params.items() if v is not None}
        response = await self._http.request(
            method,
            path.lstrip("/"),
            json=json,
            params=params,
            headers=headers,
            content=content,
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
        images: list[str] | None = None,
        cache: bool | None = None,
        enhance_prompt: bool | None = None,
        priority: int | None = None,
        **params: Any,
    ) -> Job:
        """Submit a job; returns it as accepted (status "queued"). Extra keyword arguments go
        into `input` as they are (other input fields or provider parameters).

        `wait` (0 < seconds <= 60) sends `Prefer: wait`: the gateway holds the answer until the
        job ends (the full job, outputs included) or the time is up (the job as accepted). A
        job refused for lack of tokens then raises GenhubError(402, "insufficient_tokens"),
        whose `body` carries `balance` and `required`. A retried `idempotency_key` returns the
        same job. `images` are upload keys (see `upload`) or https URLs; `cache=False` skips
        the result cache; `enhance_prompt` overrides the app's default."""
        body: dict[str, Any] = {
            "model": model,
            "input": {
                "prompt": prompt,
                "num_outputs": num_outputs,
                "aspect_ratio": aspect_ratio,
                **params,
            },
        }
        if images is not None:
            body["input"]["images"] = images
        for name, value in (
            ("cache", cache),
            ("enhance_prompt", enhance_prompt),
            ("priority", priority),
            ("webhook_url", webhook_url),
        ):
            if value is not None:
                body[name] = value
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
        """Raises GenhubError `user_not_found` (404) for an id this app never named."""
        return UserBalance.model_validate(
            await self._request("GET", f"v1/users/{_id(external_id)}")
        )

    async def register_user(self, external_id: str) -> UserBalance:
        """Name an end user before their first job (idempotent; applies the welcome grant once)."""
        return UserBalance.model_validate(
            await self._request("PUT", f"v1/users/{_id(external_id)}")
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

    async def list_models(self) -> list[Model]:
        """The models this app may use, with its token price per output."""
        body = await self._request("GET", "v1/models")
        return [Model.model_validate(m) for m in body["models"]]

    async def get_ledger(
        self, external_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """The end user's token history, newest first: `{"entries", "next_cursor"}`."""
        result: dict[str, Any] = await self._request(
            "GET",
            f"v1/users/{_id(external_id)}/ledger",
            params={"limit": limit, "cursor": cursor},
        )
        return result

    async def grant_tokens_batch(
        self, grants: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> list[GrantResult]:
        """Many grants at once, all or nothing. Each grant: `user_id`, `amount`, `reason`,
        optional `expires_at`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = await self._request(
            "POST", "v1/users/tokens/batch", json={"grants": grants}, headers=headers
        )
        return [GrantResult.model_validate(r) for r in body["results"]]

    async def upload(self, data: bytes, *, filename: str | None = None) -> Upload:
        """Upload an input image (PNG, JPEG, WEBP); pass its `key` in `images`."""
        return Upload.model_validate(
            await self._request(
                "POST",
                "v1/uploads",
                content=data,
                params={"filename": filename},
                headers={"Content-Type": "application/octet-stream"},
            )
        )

    async def get_upload(self, key: str) -> Upload:
        return Upload.model_validate(await self._request("GET", f"v1/uploads/{key}"))

    async def file_url(self, job_id: str | UUID, index: int, *, download: bool = False) -> str:
        """A fresh presigned URL of an output (the gateway answers 302 to it)."""
        response = await self._http.get(
            f"v1/files/{_id(job_id)}/{index}", params={"download": "1" if download else "0"}
        )
        if response.status_code != 302:
            raise GenhubError.from_response(response)
        return str(response.headers["location"])

    # --- webhooks ---

    async def create_webhook_endpoint(
        self,
        url: str,
        *,
        event_types: list[str] | None = None,
        description: str | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """`{"endpoint": {...}, "secret": "whsec_..."}` (the secret is shown once)."""
        body = {
            "url": url,
            "event_types": event_types,
            "description": description,
            "enabled": enabled,
        }
        result: dict[str, Any] = await self._request("POST", "v1/webhooks/endpoints", json=body)
        return result

    async def list_webhook_endpoints(self) -> list[dict[str, Any]]:
        body = await self._request("GET", "v1/webhooks/endpoints")
        return list(body.get("endpoints", []))

    async def update_webhook_endpoint(
        self, endpoint_id: str | UUID, **changes: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "PATCH", f"v1/webhooks/endpoints/{_id(endpoint_id)}", json=changes
        )
        return result

    async def delete_webhook_endpoint(self, endpoint_id: str | UUID) -> None:
        await self._request("DELETE", f"v1/webhooks/endpoints/{_id(endpoint_id)}")

    async def rotate_webhook_secret(self, endpoint_id: str | UUID) -> str:
        body = await self._request(
            "POST", f"v1/webhooks/endpoints/{_id(endpoint_id)}/rotate-secret"
        )
        return str(body["secret"])

    async def list_deliveries(self, **filters: Any) -> dict[str, Any]:
        """`{"deliveries", "next_cursor"}`; filters: status, job_id, endpoint_id, since,
        limit, cursor."""
        result: dict[str, Any] = await self._request(
            "GET", "v1/webhooks/deliveries", params={k: str(v) for k, v in filters.items()}
        )
        return result

    async def get_delivery(self, delivery_id: str | UUID) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "GET", f"v1/webhooks/deliveries/{_id(delivery_id)}"
        )
        return result

    async def replay_delivery(self, delivery_id: str | UUID) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST", f"v1/webhooks/deliveries/{_id(delivery_id)}/replay"
        )
        return result

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
        self,
        name: str,
        slug: str,
        *,
        plan: str = "free",
        webhook_url: str | None = None,
        **settings: Any,
    ) -> CreatedApp:
        """`settings`: welcome_grant, rate_limit_per_minute, user_rate_limit_per_minute,
        options (cache, charge_cache_hits, enhance_prompt, watermark, output_retention_days)."""
        body: dict[str, Any] = {"name": name, "slug": slug, "plan": plan, **settings}
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        return CreatedApp.model_validate(await self._request("POST", "admin/apps", json=body))

    async def get_app(self, app_id: str | UUID) -> App:
        """The app with its settings and keys (display prefixes only)."""
        return App.model_validate(await self._request("GET", f"admin/apps/{_id(app_id)}"))

    async def create_key_with_id(self, app_id: str | UUID) -> CreatedKey:
        return CreatedKey.model_validate(
            await self._request("POST", f"admin/apps/{_id(app_id)}/keys")
        )

    async def create_admin_token(self, name: str) -> tuple[str, str]:
        """(token, id): the token is shown once."""
        body = await self._request("POST", "admin/tokens", json={"name": name})
        return str(body["token"]), str(body["admin_token"]["id"])

    async def revoke_admin_token(self, token_id: str | UUID) -> None:
        await self._request("DELETE", f"admin/tokens/{_id(token_id)}")

    async def audit(
        self,
        *,
        app_id: str | UUID | None = None,
        action: str | None = None,
        actor: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """The audit log, newest first."""
        params = {
            "app_id": str(app_id) if app_id else None,
            "action": action,
            "actor": actor,
            "limit": limit,
            "cursor": cursor,
        }
        return AuditPage.model_validate(await self._request("GET", "admin/audit", params=params))

    async def billing_settings(self, app_id: str | UUID) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"admin/apps/{_id(app_id)}/billing")
        return result

    async def update_billing_settings(self, app_id: str | UUID, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "PUT", f"admin/apps/{_id(app_id)}/billing", json=changes
        )
        return result

    async def create_key(self, app_id: str | UUID) -> str:
        body = await self._request("POST", f"admin/apps/{_id(app_id)}/keys")
        return str(body["api_key"])

    async def list_apps(self) -> list[App]:
        body = await self._request("GET", "admin/apps")
        return [App.model_validate(app) for app in body["apps"]]

    async def update_app(self, app_id: str | UUID, **changes: Any) -> App:
        """Change `name`, `plan`, `enabled`, `webhook_url` (None clears it), `welcome_grant`,
        `rate_limit_per_minute`, `user_rate_limit_per_minute` or `options` (partially)."""
        return App.model_validate(
            await self._request("PATCH", f"admin/apps/{_id(app_id)}", json=changes)
        )

    async def revoke_key(self, app_id: str | UUID, key_id: str | UUID) -> None:
        await self._request("DELETE", f"admin/apps/{_id(app_id)}/keys/{_id(key_id)}")
