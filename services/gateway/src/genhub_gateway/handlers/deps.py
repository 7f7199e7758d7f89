"""FastAPI dependencies: the gateway's adapters, app authentication, admin authentication."""

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from genhub_platform.errors import ApiError

from genhub_gateway.adapters.catalog import ModelCatalog
from genhub_gateway.adapters.keystore import KeyStore
from genhub_gateway.adapters.repositories import KeyOwner
from genhub_gateway.adapters.upstream import Upstreams
from genhub_gateway.config import Settings
from genhub_gateway.domain.identifiers import is_valid_user_id
from genhub_gateway.domain.keys import hash_key, hashes_match, looks_like_key


@dataclass
class Gateway:
    """The gateway's adapters, built once in main.create_app and kept on app.state."""

    settings: Settings
    upstreams: Upstreams
    catalog: ModelCatalog
    keys: KeyStore


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]

# Declared as security schemes so /docs offers an "Authorize" button for each.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="app API key")
_bearer = HTTPBearer(auto_error=False, description="GENHUB_ADMIN_TOKEN")


async def require_app(
    gateway: GatewayDep, api_key: Annotated[str | None, Depends(_api_key_header)]
) -> KeyOwner:
    if not api_key:
        raise ApiError(401, "missing_api_key", "Send your API key in the X-API-Key header.")
    invalid = ApiError(401, "invalid_api_key", "The API key is not valid.")
    if not looks_like_key(api_key):
        raise invalid
    presented = hash_key(api_key)
    owner = await gateway.keys.owner(presented)
    if owner is None or not hashes_match(owner.key_hash, presented) or owner.revoked:
        raise invalid
    if not owner.enabled:
        raise ApiError(403, "app_disabled", "This app is disabled.")
    return owner


async def require_admin(
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected = gateway.settings.admin_token.get_secret_value().encode()
    presented = (credentials.credentials if credentials else "").encode()
    if not hmac.compare_digest(presented, expected):
        raise ApiError(401, "invalid_admin_token", "A valid admin bearer token is required.")


async def require_user_id(
    x_user_id: Annotated[
        str | None,
        Header(alias="X-User-ID", description="your end user's id: 1-128 of [A-Za-z0-9._:@-]"),
    ] = None,
) -> str:
    if x_user_id is None or x_user_id == "":
        raise ApiError(400, "missing_user_id", "Send your end user's id in the X-User-ID header.")
    if not is_valid_user_id(x_user_id):
        raise ApiError(
            400, "invalid_user_id", "X-User-ID must be 1-128 characters of [A-Za-z0-9._:@-]."
        )
    return x_user_id


def path_user_id(external_id: str) -> str:
    if not is_valid_user_id(external_id):
        raise ApiError(
            400, "invalid_user_id", "The user id must be 1-128 characters of [A-Za-z0-9._:@-]."
        )
    return external_id


AppDep = Annotated[KeyOwner, Depends(require_app)]
UserIdDep = Annotated[str, Depends(require_user_id)]
