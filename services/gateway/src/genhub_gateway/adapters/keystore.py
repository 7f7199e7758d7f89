"""Credential lookup by hash with a small TTL cache, so most requests skip the database.

Used for API keys (hash → the app behind it) and admin tokens (hash → the token's owner).
"""

import asyncio
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
    works at once; a revoked key or disabled app is seen by other replicas within `ttl_s`.

    Requests that miss the same hash while it is being loaded share that one load (under
    load, every request in flight used to query the database when a busy key's entry
    expired: ~3.5% of the process under the benchmark). A load started before `invalidate`
    is not shared with, nor cached for, requests that come after it."""

    MAX_ENTRIES = 10_000

    def __init__(
        self, load: Loader[T], *, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, T]] = {}
        self._loading: dict[str, asyncio.Future[T | None]] = {}

    async def owner(self, key_hash: str) -> T | None:
        hit = self._cache.get(key_hash)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        loading = self._loading.get(key_hash)
        if loading is None:
            loading = asyncio.ensure_future(self._load_and_cache(key_hash))
            self._loading[key_hash] = loading
            loading.add_done_callback(lambda done: self._forget(key_hash, done))
        # Shielded: a request that goes away does not cancel the load the others wait for.
        return await asyncio.shield(loading)

    async def _load_and_cache(self, key_hash: str) -> T | None:
        now = self._clock()
        found = await self._load(key_hash)
        if self._loading.get(key_hash) is not asyncio.current_task():
            return found  # invalidated meanwhile: answer the requests that waited, keep none
        if found is None:
            self._cache.pop(key_hash, None)
            return None
        if len(self._cache) >= self.MAX_ENTRIES:
            self._cache.clear()
        self._cache[key_hash] = (now + self._ttl_s, found)
        return found

    def _forget(self, key_hash: str, done: "asyncio.Future[T | None]") -> None:
        if self._loading.get(key_hash) is done:
            del self._loading[key_hash]
        if not done.cancelled():
            done.exception()  # retrieved: a failed load is each waiter's error, not a warning

    def invalidate(self) -> None:
        """Forget everything: called after this replica revokes a key or changes an app."""
        self._cache.clear()
        self._loading.clear()
