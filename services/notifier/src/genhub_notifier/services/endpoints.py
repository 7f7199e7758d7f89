"""Endpoint management (apps manage their own through the gateway; every query by app_id)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from genhub_platform.errors import ApiError
from genhub_platform.netguard.guard import ResolutionFailed, UrlGuard, UrlRefused
from genhub_platform.uow import UnitOfWork

from genhub_notifier.adapters import repository as repo
from genhub_notifier.adapters.secretbox import SecretBox
from genhub_notifier.adapters.tables import Endpoint
from genhub_notifier.domain.body import iso8601
from genhub_notifier.domain.endpoints import DESCRIPTION_MAX, normalise_event_types
from genhub_notifier.services.secrets import new_secret

URL_MAX = 2048
_UNSET: Any = object()


@dataclass(frozen=True)
class EndpointChanges:
    url: str | None = None
    description: str | None = None
    event_types: list[str] | None = _UNSET  # _UNSET: unchanged; None: every type
    enabled: bool | None = None


def endpoint_view(e: Endpoint) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "app_id": str(e.app_id),
        "url": e.url,
        "description": e.description,
        "event_types": list(e.event_types) if e.event_types is not None else None,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "disabled_at": iso8601(e.disabled_at) if e.disabled_at else None,
        "failing_since": iso8601(e.failing_since) if e.failing_since else None,
        "secret_rotated_grace_until": iso8601(e.previous_expires_at)
        if e.previous_expires_at
        else None,
        "created_at": iso8601(e.created_at),
        "updated_at": iso8601(e.updated_at),
    }


class EndpointService:
    def __init__(self, box: SecretBox, guard: UrlGuard, rotation_grace: timedelta) -> None:
        self._box = box
        self._guard = guard
        self._grace = rotation_grace

    async def _check_url(self, url: str) -> None:
        if len(url) > URL_MAX:
            raise ApiError(422, "url_refused", f"URL longer than {URL_MAX} characters")
        try:
            await self._guard.check(url)
        except UrlRefused as exc:
            raise ApiError(
                422, "url_refused", f"{exc.message}", details={"reason": exc.code}
            ) from exc
        except ResolutionFailed as exc:
            raise ApiError(
                422, "url_refused", str(exc), details={"reason": "unresolvable"}
            ) from exc

    @staticmethod
    def _event_types(values: list[str] | None) -> list[str] | None:
        try:
            normalised = normalise_event_types(values)
        except ValueError as exc:
            raise ApiError(422, "invalid_event_types", str(exc)) from exc
        return list(normalised) if normalised is not None else None

    @staticmethod
    def _description(value: str) -> str:
        if len(value) > DESCRIPTION_MAX:
            raise ApiError(422, "invalid_description", f"at most {DESCRIPTION_MAX} characters")
        return value

    async def create(
        self,
        uow: UnitOfWork,
        app_id: UUID,
        *,
        url: str,
        description: str,
        event_types: list[str] | None,
        enabled: bool,
    ) -> tuple[dict[str, Any], str]:
        await self._check_url(url)
        secret = new_secret()
        now = datetime.now(UTC)
        endpoint = Endpoint(
            id=uuid4(),
            app_id=app_id,
            url=url,
            description=self._description(description),
            event_types=self._event_types(event_types),
            enabled=enabled,
            secret_encrypted=self._box.encrypt(secret),
            created_at=now,
            updated_at=now,
        )
        repo.add_endpoint(uow.session, endpoint)
        await uow.commit()
        return endpoint_view(endpoint), secret

    async def list(self, uow: UnitOfWork, app_id: UUID) -> list[dict[str, Any]]:
        return [endpoint_view(e) for e in await repo.list_endpoints(uow.session, app_id)]

    async def _get(self, uow: UnitOfWork, app_id: UUID, endpoint_id: UUID) -> Endpoint:
        endpoint = await repo.get_endpoint(uow.session, app_id, endpoint_id, for_update=True)
        if endpoint is None:
            raise ApiError(404, "not_found", "no such endpoint for this app")
        return endpoint

    async def get(self, uow: UnitOfWork, app_id: UUID, endpoint_id: UUID) -> dict[str, Any]:
        return endpoint_view(await self._get(uow, app_id, endpoint_id))

    async def update(
        self, uow: UnitOfWork, app_id: UUID, endpoint_id: UUID, changes: EndpointChanges
    ) -> dict[str, Any]:
        endpoint = await self._get(uow, app_id, endpoint_id)
        if changes.url is not None and changes.url != endpoint.url:
            await self._check_url(changes.url)
            endpoint.url = changes.url
        if changes.description is not None:
            endpoint.description = self._description(changes.description)
        if changes.event_types is not _UNSET:
            endpoint.event_types = self._event_types(changes.event_types)
        if changes.enabled is not None and changes.enabled != endpoint.enabled:
            endpoint.enabled = changes.enabled
            if changes.enabled:  # re-enabled by the app: a fresh start
                endpoint.disabled_reason = None
                endpoint.disabled_at = None
                endpoint.failing_since = None
            else:
                endpoint.disabled_reason = "disabled_by_app"
                endpoint.disabled_at = datetime.now(UTC)
        endpoint.updated_at = datetime.now(UTC)
        uow.session.add(endpoint)
        view = endpoint_view(endpoint)
        await uow.commit()
        return view

    async def delete(self, uow: UnitOfWork, app_id: UUID, endpoint_id: UUID) -> None:
        if not await repo.delete_endpoint(uow.session, app_id, endpoint_id):
            raise ApiError(404, "not_found", "no such endpoint for this app")
        await uow.commit()

    async def rotate_secret(self, uow: UnitOfWork, app_id: UUID, endpoint_id: UUID) -> str:
        endpoint = await self._get(uow, app_id, endpoint_id)
        secret = new_secret()
        now = datetime.now(UTC)
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_expires_at = now + self._grace
        endpoint.secret_encrypted = self._box.encrypt(secret)
        endpoint.updated_at = now
        uow.session.add(endpoint)
        await uow.commit()
        return secret
