"""Credential lookup by hash with a small TTL cache, so most requests skip the database.

Used for API keys (hash → the app behind it) and admin tokens (hash → the token's owner).
"""

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from genhub_platform.db import SessionFactory

from genhub_gateway.adapters.repositories import (
    AdminTokenOwner,
    AdminTokenRepository,
    AppRepository,
    KeyOwner,
)

T = TypeVar("T")
Loader = Callable[[str], Awaitable[T | None]]


def db_loader(sessions: SessionFactory) -> Loader[KeyOwner]:
    async def load(key_hash: str) -> KeyOwner | None:
        async with sessions() as session:
            return await AppRepository(session).key_owner(key_hash)

    return load


def admin_token_loader(sessions: SessionFactory) -> Loader[AdminTokenOwner]:
    async def load(token_hash: str) -> AdminTokenOwner | None:
        async with sessions() as session:
            return await AdminTokenRepository(session).owner(token_hash)

    return load


class KeyStore(Generic[T]):
    """Caches found credentials only: an unknown one costs a query, so a newly created key
    works at once; a revoked key or disabled app is seen by other replicas within `ttl_s`."""

    MAX_ENTRIES = 10_000

    def __init__(
        self, load: Loader[T], *, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, T]] = {}

    async def owner(self, key_hash: str) -> T | None:
        now = self._clock()
        hit = self._cache.get(key_hash)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await self._load(key_hash)
        if found is None:
            self._cache.pop(key_hash, None)
            return None
        if len(self._cache) >= self.MAX_ENTRIES:
            self._cache.clear()
        self._cache[key_hash] = (now + self._ttl_s, found)
        return found

    def invalidate(self) -> None:
        """Forget everything: called after this replica revokes a key or changes an app."""
        self._cache.clear()
