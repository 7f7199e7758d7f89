"""FastAPI dependencies: the gateway's adapters, app authentication with rate limits, admin
authentication, and the request's audit context."""

import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from genhub_platform.errors import ApiError
from genhub_platform.runtime import Runtime

from genhub_gateway.adapters.accept import JobAcceptor
from genhub_gateway.adapters.catalog import ModelCatalog, PriceCache
from genhub_gateway.adapters.keystore import KeyStore
from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.adapters.ratelimit import RateLimiter
from genhub_gateway.adapters.repositories import AdminTokenOwner, KeyOwner
from genhub_gateway.adapters.upstream import Upstreams
from genhub_gateway.adapters.urls import UrlChecker
from genhub_gateway.config import Settings
from genhub_gateway.domain import ratelimit
from genhub_gateway.domain.identifiers import is_valid_user_id
from genhub_gateway.domain.keys import (
    hash_key,
    hashes_match,
    looks_like_admin_token,
    looks_like_key,
)
from genhub_gateway.handlers.middleware import add_response_headers

BOOTSTRAP_ACTOR = "admin:bootstrap"


@dataclass
class KnownUsers:
    """(app, end user) pairs this replica has seen welcomed: they skip the end-user query."""

    MAX_ENTRIES = 100_000
    seen: set[tuple[str, str]] = field(default_factory=set)

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return pair in self.seen

    def add(self, pair: tuple[str, str]) -> None:
        if len(self.seen) >= self.MAX_ENTRIES:
            self.seen.clear()
        self.seen.add(pair)


@dataclass
class Gateway:
    """The gateway's adapters, built once in main.create_app and kept on app.state."""

    settings: Settings
    pool: PgPool
    upstreams: Upstreams
    catalog: ModelCatalog
    prices: PriceCache
    keys: KeyStore[KeyOwner]
    admin_tokens: KeyStore[AdminTokenOwner]
    limiter: RateLimiter
    acceptor: JobAcceptor
    urls: UrlChecker
    known_users: KnownUsers = field(default_factory=KnownUsers)


# Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in a thread pool,
# which costs more than everything else these do.
async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

# Declared as security schemes so /docs offers an "Authorize" button for each.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="app API key")
_bearer = HTTPBearer(
    auto_error=False, description="GENHUB_ADMIN_TOKEN or an admin token (gh_admin_...)"
)


def source_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _auth_failed(request: Request, gateway: Gateway, error: ApiError) -> ApiError:
    """Count a failed authentication against the caller's address; past the limit the answer
    becomes 429 instead of the 401."""
    limit = ratelimit.auth_failure_limit(
        source_address(request), gateway.settings.auth_failure_limit
    )
    usages = await gateway.limiter.hit([limit])
    if ratelimit.admitted(usages):
        return error
    return ApiError(
        429,
        "too_many_failed_authentications",
        "Too many failed authentications from this address; retry later.",
        headers=ratelimit.headers(usages),
    )


async def require_app(
    request: Request, api_key: Annotated[str | None, Depends(_api_key_header)]
) -> KeyOwner:
    """The calling app (authenticated) whose call the rate limits admitted."""
    owner = await authenticate_app(request, api_key)
    gateway: Gateway = request.app.state.gateway
    admit(request, await gateway.limiter.hit(caller_limits(request, owner)))
    return owner


async def authenticate_app(request: Request, api_key: str | None) -> KeyOwner:
    """The app the key belongs to; its call is not counted yet (see `require_app`)."""
    # The gateway comes from app.state directly: every sub-dependency costs on the hot path.
    gateway: Gateway = request.app.state.gateway
    if not api_key:
        raise await _auth_failed(
            request,
            gateway,
            ApiError(401, "missing_api_key", "Send your API key in the X-API-Key header."),
        )
    invalid = ApiError(401, "invalid_api_key", "The API key is not valid.")
    if not looks_like_key(api_key):
        raise await _auth_failed(request, gateway, invalid)
    presented = hash_key(api_key)
    owner = await gateway.keys.owner(presented)
    if owner is None or not hashes_match(owner.key_hash, presented) or owner.revoked:
        raise await _auth_failed(request, gateway, invalid)
    if not owner.enabled:
        raise ApiError(403, "app_disabled", "This app is disabled.")
    return owner


def caller_limits(request: Request, owner: KeyOwner) -> list[ratelimit.Limit]:
    """Per app on every call; per end user as well when the call names one (X-User-ID)."""
    user_id = request.headers.get("x-user-id")
    if user_id is not None and not is_valid_user_id(user_id):
        user_id = None  # the handler refuses it; the app's bucket still counts the call
    return ratelimit.request_limits(
        owner.app_id, owner.rate_limit_per_minute, user_id, owner.user_rate_limit_per_minute
    )


def admit(request: Request, usages: list[ratelimit.Usage]) -> None:
    """429 when a limit refused the call; otherwise its state goes into the answer's headers."""
    headers = ratelimit.headers(usages)
    if not ratelimit.admitted(usages):
        which = ", ".join(u.limit.name for u in usages if not u.allowed)
        raise ApiError(
            429,
            "rate_limited",
            f"Rate limit exceeded ({which}); retry after {headers['Retry-After']} s.",
            headers=headers,
        )
    add_response_headers(request.scope, headers)


@dataclass(frozen=True)
class Actor:
    """Who is acting, for the audit log, and the request it happened in."""

    name: str
    request_id: str


async def require_admin(
    request: Request,
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    presented = credentials.credentials if credentials else ""
    request_id = str(getattr(request.state, "request_id", ""))
    expected = gateway.settings.admin_token.get_secret_value().encode()
    if hmac.compare_digest(presented.encode(), expected):
        return Actor(BOOTSTRAP_ACTOR, request_id)
    if looks_like_admin_token(presented):
        token_hash = hash_key(presented)
        owner = await gateway.admin_tokens.owner(token_hash)
        if owner is not None and hashes_match(owner.token_hash, token_hash) and not owner.revoked:
            return Actor(owner.actor, request_id)
    raise await _auth_failed(
        request,
        gateway,
        ApiError(401, "invalid_admin_token", "A valid admin bearer token is required."),
    )


UserIdHeader = Annotated[
    str | None,
    Header(alias="X-User-ID", description="your end user's id: 1-128 of [A-Za-z0-9._:@-]"),
]


async def require_user_id(x_user_id: UserIdHeader = None) -> str:
    return header_user_id(x_user_id)


def header_user_id(x_user_id: str | None) -> str:
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


async def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


AppDep = Annotated[KeyOwner, Depends(require_app)]
AdminDep = Annotated[Actor, Depends(require_admin)]
UserIdDep = Annotated[str, Depends(require_user_id)]
RequestIdDep = Annotated[str, Depends(request_id)]
