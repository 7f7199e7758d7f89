"""HTTP clients for the services the gateway asks synchronously (docs/internal-apis.md).

An upstream that cannot be reached, times out or answers 5xx becomes `503
upstream_unavailable` for the app (never a 500); an answer the gateway does not understand
becomes `502 upstream_error`.
"""

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
from genhub_platform.errors import ApiError

log = logging.getLogger(__name__)


class UpstreamUnavailable(ApiError):
    def __init__(self, service: str) -> None:
        super().__init__(
            503,
            "upstream_unavailable",
            f"The {service} service is unavailable; retry shortly.",
            headers={"Retry-After": "1"},
        )


class UpstreamError(ApiError):
    def __init__(self, service: str, detail: str) -> None:
        super().__init__(502, "upstream_error", f"Unexpected answer from {service}: {detail}")


def _seg(value: str | UUID) -> str:
    return quote(str(value), safe="")


def error_code(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from a problem-JSON error body, tolerating other shapes."""
    try:
        body = response.json()
    except ValueError:
        return "http_error", response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "http_error")), str(error.get("message", ""))
    if isinstance(body, dict):
        return str(body.get("code", "http_error")), str(body.get("detail", ""))
    return "http_error", ""


def client_error(response: httpx.Response, service: str) -> ApiError:
    """The owner's 4xx problem, as the gateway's own answer to the app."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code"):
        return ApiError(
            response.status_code,
            str(error["code"]),
            str(error.get("message") or f"Refused by {service}."),
            details=error.get("details"),
        )
    return ApiError(response.status_code, "request_refused", f"Refused by {service}.")


class UpstreamClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, service: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self.service = service

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, self._base_url + path, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("%s %s %s failed: %r", self.service, method, path, exc)
            raise UpstreamUnavailable(self.service) from exc
        if response.status_code >= 500:
            log.warning("%s %s %s answered %d", self.service, method, path, response.status_code)
            raise UpstreamUnavailable(self.service)
        return response

    def json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError(self.service, "body is not JSON") from exc
        if not isinstance(body, dict):
            raise UpstreamError(self.service, "body is not an object")
        return body

    def unexpected(self, response: httpx.Response) -> ApiError:
        code, _ = error_code(response)
        return UpstreamError(self.service, f"{response.status_code} {code}")

    async def forward(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Call the owner of a resource and return (status, body) of a 2xx answer. A 4xx is
        the caller's problem and goes back to the app with the owner's status, code, message
        and field details; 5xx and transport errors are 503 (see `request`)."""
        if params is not None:
            params = {k: v for k, v in params.items() if v is not None}
        r = await self.request(method, path, json=json, params=params, content=content)
        if 200 <= r.status_code < 300:
            return r.status_code, (self.json(r) if r.content else {})
        if 400 <= r.status_code < 500:
            raise client_error(r, self.service)
        raise self.unexpected(r)


class BillingClient(UpstreamClient):
    # Errors billing raises because of the request (bad amount, bad key) go back to the app.
    _CLIENT_ERRORS = frozenset({400, 409, 422})

    async def balance(self, app_id: UUID, user_id: str) -> dict[str, Any]:
        r = await self.request(
            "GET", f"/internal/apps/{_seg(app_id)}/users/{_seg(user_id)}/balance"
        )
        return self._ok(r)

    async def grant(
        self, app_id: UUID, user_id: str, amount: int, reason: str, idempotency_key: str | None
    ) -> dict[str, Any]:
        r = await self.request(
            "POST",
            f"/internal/apps/{_seg(app_id)}/users/{_seg(user_id)}/grants",
            json={"amount": amount, "reason": reason, "idempotency_key": idempotency_key},
        )
        return self._ok(r)

    async def grant_batch(
        self, app_id: UUID, grants: list[dict[str, Any]], idempotency_key: str | None
    ) -> dict[str, Any]:
        """All or nothing: one bad row and billing applies none (422)."""
        return (
            await self.forward(
                "POST",
                f"/internal/apps/{_seg(app_id)}/grants/batch",
                json={"grants": grants, "idempotency_key": idempotency_key},
            )
        )[1]

    async def update_settings(self, app_id: UUID, changes: dict[str, Any]) -> dict[str, Any]:
        return (await self.forward("PUT", f"/internal/apps/{_seg(app_id)}/settings", json=changes))[
            1
        ]

    async def ledger(
        self, app_id: UUID, user_id: str, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        return (
            await self.forward(
                "GET",
                f"/internal/apps/{_seg(app_id)}/users/{_seg(user_id)}/ledger",
                params={"limit": limit, "cursor": cursor},
            )
        )[1]

    async def prices(self, app_id: UUID) -> dict[str, int]:
        """tokens per output by model, for this app (its overrides applied)."""
        body = (await self.forward("GET", "/internal/prices", params={"app_id": str(app_id)}))[1]
        prices = body.get("prices")
        if not isinstance(prices, list):
            raise UpstreamError(self.service, "no prices list")
        return {
            str(p["model"]): int(p["tokens_per_output"])
            for p in prices
            if isinstance(p, dict) and "model" in p and "tokens_per_output" in p
        }

    def _ok(self, r: httpx.Response) -> dict[str, Any]:
        if r.status_code in (200, 201):
            return self.json(r)
        if r.status_code in self._CLIENT_ERRORS:
            code, message = error_code(r)
            raise ApiError(r.status_code, code, message or "Billing refused the request.")
        raise self.unexpected(r)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    enabled: bool
    max_outputs: int | None
    display_name: str | None = None
    capabilities: tuple[str, ...] = ()
    max_input_images: int | None = None
    aspect_ratios: tuple[str, ...] = ()


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


class OrchestratorClient(UpstreamClient):
    async def models(self) -> list[ModelInfo]:
        r = await self.request("GET", "/internal/models")
        if r.status_code != 200:
            raise self.unexpected(r)
        raw = self.json(r).get("models")
        if not isinstance(raw, list):
            raise UpstreamError(self.service, "no models list")
        return [
            ModelInfo(
                name=str(m["name"]),
                enabled=bool(m.get("enabled", True)),
                max_outputs=_int_or_none(m.get("max_outputs")),
                display_name=str(m["display_name"]) if m.get("display_name") else None,
                capabilities=tuple(str(c) for c in m.get("capabilities") or ()),
                max_input_images=_int_or_none(m.get("max_input_images")),
                aspect_ratios=tuple(str(a) for a in m.get("aspect_ratios") or ()),
            )
            for m in raw
            if isinstance(m, dict) and "name" in m
        ]


def _own_upload_key(app_id: UUID, key: str) -> bool:
    # Upload keys are inputs/{app_id}/...: another app's key is not even asked for.
    return key.startswith(f"inputs/{app_id}/") and ".." not in key.split("/")


def upload_not_found() -> ApiError:
    return ApiError(404, "upload_not_found", "No such upload for this app.")


class StorageClient(UpstreamClient):
    async def job_files(self, app_id: UUID, job_id: UUID) -> list[dict[str, Any]] | None:
        """Fresh presigned URLs for a job's outputs; None when storage has no such files."""
        r = await self.request("GET", f"/internal/apps/{_seg(app_id)}/jobs/{_seg(job_id)}/files")
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise self.unexpected(r)
        files = self.json(r).get("files")
        if not isinstance(files, list):
            raise UpstreamError(self.service, "no files list")
        return [f for f in files if isinstance(f, dict)]

    async def upload(
        self, app_id: UUID, data: bytes, filename: str | None, user_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        return await self.forward(
            "POST",
            f"/internal/apps/{_seg(app_id)}/uploads",
            params={"filename": filename, "user_id": user_id},
            content=data,
        )

    async def get_upload(self, app_id: UUID, key: str) -> dict[str, Any]:
        if not _own_upload_key(app_id, key):
            raise upload_not_found()
        try:
            return (
                await self.forward("GET", f"/internal/apps/{_seg(app_id)}/uploads/{quote(key)}")
            )[1]
        except ApiError as exc:
            if exc.status == 404:
                raise upload_not_found() from None
            raise

    async def file_url(
        self, app_id: UUID, job_id: UUID, index: int, *, download: bool, filename: str | None
    ) -> dict[str, Any]:
        return (
            await self.forward(
                "GET",
                f"/internal/apps/{_seg(app_id)}/jobs/{_seg(job_id)}/files/{index}/url",
                params={"download": "true" if download else "false", "filename": filename},
            )
        )[1]

    async def upload_exists(self, app_id: UUID, key: str) -> bool:
        """Whether `key` is one of this app's uploads (keys of other apps are not found)."""
        if not _own_upload_key(app_id, key):
            return False
        r = await self.request("GET", f"/internal/apps/{_seg(app_id)}/uploads/{quote(key)}")
        if r.status_code == 200:
            return True
        if r.status_code in (400, 404, 422):
            return False
        raise self.unexpected(r)


class NotifierClient(UpstreamClient):
    async def create_signing_secret(self, app_id: UUID) -> str:
        r = await self.request("POST", f"/internal/apps/{_seg(app_id)}/signing-secret")
        if r.status_code not in (200, 201):
            raise self.unexpected(r)
        secret = self.json(r).get("secret")
        if not isinstance(secret, str) or not secret:
            raise UpstreamError(self.service, "no secret in answer")
        return secret


@dataclass
class Upstreams:
    billing: BillingClient
    orchestrator: OrchestratorClient
    storage: StorageClient
    notifier: NotifierClient
    http: httpx.AsyncClient

    @classmethod
    def create(
        cls,
        *,
        billing_url: str,
        orchestrator_url: str,
        storage_url: str,
        notifier_url: str,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> "Upstreams":
        http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        return cls(
            billing=BillingClient(http, billing_url, "billing"),
            orchestrator=OrchestratorClient(http, orchestrator_url, "orchestrator"),
            storage=StorageClient(http, storage_url, "storage"),
            notifier=NotifierClient(http, notifier_url, "notifier"),
            http=http,
        )
