"""Admin API: `/admin/*`, authenticated by `Authorization: Bearer <GENHUB_ADMIN_TOKEN>`."""

from uuid import UUID

from fastapi import APIRouter, Depends, status
from genhub_platform.deps import UowDep
from genhub_platform.errors import ApiError

from genhub_gateway import services
from genhub_gateway.adapters.repositories import AppRepository
from genhub_gateway.adapters.tables import ApiKeyRow, AppRow
from genhub_gateway.handlers.deps import GatewayDep, require_admin
from genhub_gateway.schemas import (
    AppListOut,
    AppOut,
    AppWithKeysOut,
    CreateAppRequest,
    CreatedAppOut,
    CreatedKeyOut,
    KeyOut,
    UpdateAppRequest,
)

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _app_out(app: AppRow) -> AppOut:
    return AppOut.model_validate(app, from_attributes=True)


def _key_out(key: ApiKeyRow) -> KeyOut:
    return KeyOut.model_validate(key, from_attributes=True)


def _app_uuid(app_id: str) -> UUID:
    try:
        return UUID(app_id)
    except ValueError:
        raise ApiError(404, "app_not_found", "No such app.") from None


@router.post("/apps", status_code=status.HTTP_201_CREATED, response_model=CreatedAppOut)
async def create_app(body: CreateAppRequest, gateway: GatewayDep, uow: UowDep) -> CreatedAppOut:
    created = await services.create_app(
        uow,
        gateway.upstreams.notifier,
        name=body.name,
        slug=body.slug,
        plan=body.plan,
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
    )
    await uow.commit()
    return CreatedAppOut(
        app=_app_out(created.app),
        api_key=created.secret.secret,
        key=_key_out(created.key),
        webhook_secret=created.webhook_secret,
    )


@router.get("/apps", response_model=AppListOut)
async def list_apps(uow: UowDep) -> AppListOut:
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
async def get_app(app_id: str, uow: UowDep) -> AppWithKeysOut:
    repo = AppRepository(uow.session)
    app = await repo.get(_app_uuid(app_id))
    if app is None:
        raise services.app_not_found()
    return AppWithKeysOut(
        **_app_out(app).model_dump(), keys=[_key_out(k) for k in await repo.keys(app.id)]
    )


@router.patch("/apps/{app_id}", response_model=AppOut)
async def update_app(
    app_id: str, body: UpdateAppRequest, gateway: GatewayDep, uow: UowDep
) -> AppOut:
    app = await services.update_app(uow, _app_uuid(app_id), body)
    await uow.commit()
    gateway.keys.invalidate()  # a disabled app stops at once on this replica
    return _app_out(app)


@router.post(
    "/apps/{app_id}/keys", status_code=status.HTTP_201_CREATED, response_model=CreatedKeyOut
)
async def create_key(app_id: str, uow: UowDep) -> CreatedKeyOut:
    key, new = await services.issue_key(uow, _app_uuid(app_id))
    await uow.commit()
    return CreatedKeyOut(api_key=new.secret, key=_key_out(key))


@router.delete("/apps/{app_id}/keys/{key_id}", response_model=KeyOut)
async def revoke_key(app_id: str, key_id: UUID, gateway: GatewayDep, uow: UowDep) -> KeyOut:
    key = await services.revoke_key(uow, _app_uuid(app_id), key_id)
    await uow.commit()
    gateway.keys.invalidate()
    return _key_out(key)
