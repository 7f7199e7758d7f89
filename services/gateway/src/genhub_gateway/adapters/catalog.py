"""The orchestrator's model catalog, cached so `POST /v1/generate` does not call it each time."""

import asyncio
import time
from collections.abc import Callable
from uuid import UUID

from genhub_gateway.adapters.upstream import (
    BillingClient,
    ModelInfo,
    OrchestratorClient,
    UpstreamUnavailable,
)

# While an upstream is down, the stale copy is served and the upstream asked again only this
# often: asking on every request would add a failed call (up to the upstream timeout, one
# waiter after another behind the refresh lock) to each of them.
RETRY_S = 5.0
# With no copy to serve (a fresh replica), requests are refused for this long after a failed
# refresh instead of each one, one after another behind the lock, asking again: with an
# orchestrator that hangs, every waiter would add a whole upstream timeout to the next.
COLD_RETRY_S = 1.0


class ModelCatalog:
    def __init__(
        self,
        orchestrator: OrchestratorClient,
        *,
        ttl_s: float = 30.0,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._orchestrator = orchestrator
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._clock = clock
        self._models: dict[str, ModelInfo] | None = None
        self._fresh_until = 0.0  # served without asking until then
        self._lock = asyncio.Lock()

    async def models(self) -> dict[str, ModelInfo]:
        if self._clock() < self._fresh_until:
            return self._known()
        async with self._lock:  # one refresh at a time, not one per waiting request
            if self._clock() < self._fresh_until:
                return self._known()
            try:
                fresh = await self._orchestrator.models()
            except UpstreamUnavailable:
                # A stale catalog beats refusing every job while the orchestrator restarts.
                stale = self._models is not None
                self._fresh_until = self._clock() + (self._retry_s if stale else COLD_RETRY_S)
                return self._known()
            self._models = {m.name: m for m in fresh}
            self._fresh_until = self._clock() + self._ttl_s
            return self._models

    def _known(self) -> dict[str, ModelInfo]:
        if self._models is None:
            raise UpstreamUnavailable(self._orchestrator.service)
        return self._models

    async def get(self, name: str) -> ModelInfo | None:
        return (await self.models()).get(name)

    def invalidate(self) -> None:
        """Refetch on next use (after an admin changed the catalog through this replica)."""
        self._fresh_until = float("-inf")


class PriceCache:
    """Each app's token prices from billing, kept `ttl_s` per app (for `GET /v1/models`)."""

    MAX_APPS = 10_000

    def __init__(
        self,
        billing: BillingClient,
        *,
        ttl_s: float = 30.0,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._billing = billing
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._clock = clock
        self._prices: dict[UUID, tuple[float, dict[str, int]]] = {}

    async def for_app(self, app_id: UUID) -> dict[str, int]:
        now = self._clock()
        hit = self._prices.get(app_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            prices = await self._billing.prices(app_id)
        except UpstreamUnavailable:
            if hit is not None:  # stale prices beat none while billing restarts
                self._prices[app_id] = (now + self._retry_s, hit[1])
                return hit[1]
            raise
        if len(self._prices) >= self.MAX_APPS:
            self._prices.clear()
        self._prices[app_id] = (now + self._ttl_s, prices)
        return prices
