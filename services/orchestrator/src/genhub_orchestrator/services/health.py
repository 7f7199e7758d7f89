"""Provider health: one circuit breaker per provider in this process, published on change.

Breakers live in memory (each replica judges the providers it calls); a change of health is
written to the provider's catalog row and announced as `provider.health_changed` through the
outbox, and mirrored in Prometheus gauges.
"""

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from genhub_contracts import ProviderHealthChanged
from genhub_contracts.events import ProviderHealthChangedPayload
from genhub_platform.uow import UnitOfWork

from genhub_orchestrator.adapters.repositories import CatalogRepository
from genhub_orchestrator.domain.resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    Health,
)
from genhub_orchestrator.metrics import CIRCUIT_OPEN, PROVIDER_HEALTH

log = logging.getLogger(__name__)

# provider.health_changed is not about one app: the envelope's required app id is the nil UUID.
SYSTEM_APP_ID = UUID(int=0)
_LEVEL = {Health.HEALTHY: 0, Health.DEGRADED: 1, Health.DOWN: 2}


@dataclass(frozen=True)
class HealthChange:
    provider: str
    health: Health
    previous: Health
    circuit: CircuitState


class HealthBoard:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        default: BreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow = uow_factory
        self._default = default
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._seen: dict[str, Health] = {}

    def breaker(self, provider: str, settings: Mapping[str, Any] | None = None) -> CircuitBreaker:
        config = BreakerConfig.from_settings(settings or {}, self._default)
        breaker = self._breakers.get(provider)
        if breaker is None:
            breaker = self._breakers[provider] = CircuitBreaker(config)
        else:
            breaker.reconfigure(config)
        return breaker

    def now(self) -> float:
        return self._clock()

    def view(self) -> dict[str, tuple[Health, CircuitState]]:
        now = self._clock()
        return {name: (b.health(now), b.state) for name, b in self._breakers.items()}

    def changed(self, provider: str) -> bool:
        """Has this provider's health changed since it was last published? (Cheap: asked after
        every call; `changes()` then finds it and refreshes the gauges.)"""
        breaker = self._breakers.get(provider)
        return breaker is not None and breaker.health(self._clock()) is not self._seen.get(
            provider, Health.HEALTHY
        )

    def changes(self) -> list[HealthChange]:
        """Health that changed since the last call (and updates the gauges)."""
        now = self._clock()
        out = []
        for name, breaker in self._breakers.items():
            health = breaker.health(now)
            previous = self._seen.get(name, Health.HEALTHY)
            PROVIDER_HEALTH.labels(name).set(_LEVEL[health])
            CIRCUIT_OPEN.labels(name).set(1 if breaker.state is CircuitState.OPEN else 0)
            if health is not previous:
                self._seen[name] = health
                out.append(HealthChange(name, health, previous, breaker.state))
        return out

    async def publish_changes(self) -> None:
        changes = self.changes()
        if not changes:
            return
        async with self._uow() as uow:
            repo = CatalogRepository(uow.session)
            for change in changes:
                stored_previous = await repo.set_health(
                    change.provider, change.health.value, change.circuit.value
                )
                log.warning(
                    "provider %s is %s (was %s)", change.provider, change.health, change.previous
                )
                if stored_previous is None:
                    continue  # another replica already announced this health
                uow.publish(
                    ProviderHealthChanged.new(
                        app_id=SYSTEM_APP_ID,
                        payload=ProviderHealthChangedPayload(
                            provider=change.provider,
                            health=change.health.value,
                            previous=stored_previous,  # type: ignore[arg-type]
                        ),
                    )
                )
            await uow.commit()
