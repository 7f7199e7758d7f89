"""Admin API: `/admin/*`, authenticated by `Authorization: Bearer <admin token>` (the bootstrap
GENHUB_ADMIN_TOKEN or a token created here). Every change is written to the audit log in the
same transaction."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status
from genhub_platform.deps import UowDep
from genhub_platform.errors import ApiError

from genhub_gateway import audit, services
from genhub_gateway.adapters.repositories import AdminTokenRepository, AppRepository, AuditFilters
from genhub_gateway.adapters.tables import AdminTokenRow, ApiKeyRow, AppRow
from genhub_gateway.domain.keys import ADMIN_TOKEN_PREFIX, generate_key
from genhub_gateway.handlers.deps import Actor, AdminDep, GatewayDep
from genhub_gateway.schemas import (
    AdminTokenListOut,
    AdminTokenOut,
    AppListOut,
    AppOut,
    AppWithKeysOut,
    AuditPageOut,
    CreateAdminTokenRequest,
    CreateAppRequest,
    CreatedAdminTokenOut,
    CreatedAppOut,
    CreatedKeyOut,
    KeyOut,
    UpdateAppRequest,
)

router = APIRouter(prefix="/admin", tags=["admin"])


def _app_out(app: AppRow) -> AppOut:
    return AppOut.model_validate(app, from_attributes=True)


def _key_out(key: ApiKeyRow) -> KeyOut:
    return KeyOut.model_validate(key, from_attributes=True)


def _token_out(token: AdminTokenRow) -> AdminTokenOut:
    return AdminTokenOut.model_validate(token, from_attributes=True)


def _app_uuid(app_id: str) -> UUID:
    try:
        return UUID(app_id)
    except ValueError:
        raise ApiError(404, "app_not_found", "No such app.") from None


def _audit(
    uow: UowDep,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | UUID,
    app_id: UUID | None,
    before: AppOut | KeyOut | AdminTokenOut | None,
    after: AppOut | KeyOut | AdminTokenOut | None,
) -> None:
    audit.record(
        uow.session,
        actor=actor.name,
        request_id=actor.request_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        app_id=app_id,
        before=audit.snapshot(before),
        after=audit.snapshot(after),
    )


@router.post("/apps", status_code=status.HTTP_201_CREATED, response_model=CreatedAppOut)
async def create_app(
    body: CreateAppRequest, actor: AdminDep, gateway: GatewayDep, uow: UowDep
) -> CreatedAppOut:
    """Create an app with its first API key and its webhook signing secret (both shown once)."""
    if body.webhook_url is not None:
        await gateway.urls.webhook(str(body.webhook_url), "body.webhook_url")
    created = await services.create_app(
        uow,
        gateway.upstreams.notifier,
        body,
        default_rate_limit=gateway.settings.default_app_rate_limit,
        default_user_rate_limit=gateway.settings.default_user_rate_limit,
    )
    # Billing keeps the plan too (monthly allocations): told before the commit, so a
    # failure leaves nothing behind and the admin retries.
    await gateway.upstreams.billing.update_settings(created.app.id, {"plan": body.plan.value})
    app_out, key_out = _app_out(created.app), _key_out(created.key)
    _audit(uow, actor, "app.create", "app", created.app.id, created.app.id, None, app_out)
    _audit(uow, actor, "key.create", "key", created.key.id, created.app.id, None, key_out)
    await uow.commit()
    return CreatedAppOut(
        app=app_out,
        api_key=created.secret.secret,
        key=key_out,
        webhook_secret=created.webhook_secret,
    )


@router.get("/apps", response_model=AppListOut)
async def list_apps(_: AdminDep, uow: UowDep) -> AppListOut:
    repo = AppRepository(uow.session)
    apps = await repo.all()
    return AppListOut(
        apps=[
            AppWithKeysOut(
                **_app_out(app).model_dump(), keys=[_key_out(k) for k in await repo.keys(app.id)]
            )
            for app in apps
        ]
    )


@router.get("/apps/{app_id}", response_model=AppWithKeysOut)
async def get_app(app_id: str, _: AdminDep, uow: UowDep) -> AppWithKeysOut:
    repo = AppRepository(uow.session)
    app = await repo.get(_app_uuid(app_id))
    if app is None:
        raise services.app_not_found()
    return AppWithKeysOut(
        **_app_out(app).model_dump(), keys=[_key_out(k) for k in await repo.keys(app.id)]
    )


@router.patch("/apps/{app_id}", response_model=AppOut)
async def update_app(
    app_id: str, body: UpdateAppRequest, actor: AdminDep, gateway: GatewayDep, uow: UowDep
) -> AppOut:
    """Change an app's settings: name, plan, enabled, webhook URL, welcome grant, rate limits,
    job options (partially: options fields left out keep their value)."""
    if body.webhook_url is not None:
        await gateway.urls.webhook(str(body.webhook_url), "body.webhook_url")
    uuid = _app_uuid(app_id)
    current = await AppRepository(uow.session).get(uuid)
    before = _app_out(current) if current is not None else None
    app = await services.update_app(uow, uuid, body)
    after = _app_out(app)
    if before is not None and after.plan != before.plan:
        await gateway.upstreams.billing.update_settings(app.id, {"plan": after.plan.value})
    _audit(uow, actor, "app.update", "app", app.id, app.id, before, after)
    await uow.commit()
    gateway.keys.invalidate()  # new settings and a disabled app apply at once on this replica
    return after


@router.post(
    "/apps/{app_id}/keys", status_code=status.HTTP_201_CREATED, response_model=CreatedKeyOut
)
async def create_key(app_id: str, actor: AdminDep, uow: UowDep) -> CreatedKeyOut:
    """Another API key for the app (shown once); old keys keep working until revoked."""
    key, new = await services.issue_key(uow, _app_uuid(app_id))
    await uow.session.flush()
    out = _key_out(key)
    _audit(uow, actor, "key.create", "key", key.id, key.app_id, None, out)
    await uow.commit()
    return CreatedKeyOut(api_key=new.secret, key=out)


@router.delete("/apps/{app_id}/keys/{key_id}", response_model=KeyOut)
async def revoke_key(
    app_id: str, key_id: UUID, actor: AdminDep, gateway: GatewayDep, uow: UowDep
) -> KeyOut:
    """Revoke a key: 401 invalid_api_key from then on (other replicas within the auth cache
    TTL)."""
    key, changed = await services.revoke_key(uow, _app_uuid(app_id), key_id)
    out = _key_out(key)
    if changed:
        before = out.model_copy(update={"revoked_at": None})
        _audit(uow, actor, "key.revoke", "key", key.id, key.app_id, before, out)
    await uow.commit()
    gateway.keys.invalidate()
    return out


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=CreatedAdminTokenOut)
async def create_admin_token(
    body: CreateAdminTokenRequest, actor: AdminDep, uow: UowDep
) -> CreatedAdminTokenOut:
    """A new admin token (shown once, stored as its SHA-256)."""
    new = generate_key(ADMIN_TOKEN_PREFIX)
    row = AdminTokenRow(
        name=body.name, prefix=new.prefix, token_hash=new.hash, created_by=actor.name
    )
    uow.session.add(row)
    await uow.session.flush()
    out = _token_out(row)
    _audit(uow, actor, "admin_token.create", "admin_token", row.id, None, None, out)
    await uow.commit()
    return CreatedAdminTokenOut(token=new.secret, admin_token=out)


@router.get("/tokens", response_model=AdminTokenListOut)
async def list_admin_tokens(_: AdminDep, uow: UowDep) -> AdminTokenListOut:
    rows = await AdminTokenRepository(uow.session).all()
    return AdminTokenListOut(tokens=[_token_out(r) for r in rows])


@router.delete("/tokens/{token_id}", response_model=AdminTokenOut)
async def revoke_admin_token(
    token_id: UUID, actor: AdminDep, gateway: GatewayDep, uow: UowDep
) -> AdminTokenOut:
    row = await AdminTokenRepository(uow.session).get(token_id)
    if row is None:
        raise ApiError(404, "admin_token_not_found", "No such admin token.")
    if row.revoked_at is None:
        before = _token_out(row)
        row.revoked_at = services.utcnow()
        uow.session.add(row)
        _audit(
            uow, actor, "admin_token.revoke", "admin_token", row.id, None, before, _token_out(row)
        )
    out = _token_out(row)
    await uow.commit()
    gateway.admin_tokens.invalidate()
    return out


@router.get("/audit", response_model=AuditPageOut)
async def list_audit(
    _: AdminDep,
    uow: UowDep,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="e.g. app.update, key.revoke, tokens.grant")
    ] = None,
    app_id: UUID | None = None,
    target_id: Annotated[str | None, Query(max_length=300)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditPageOut:
    """The audit log, newest first, with filters and cursor pagination."""
    filters = AuditFilters(
        actor=actor, action=action, app_id=app_id, target_id=target_id, since=since, until=until
    )
    return await audit.page(uow.session, filters, limit=limit, cursor=cursor)
