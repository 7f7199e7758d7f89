"""Provider adapters, keyed by the catalog's provider name."""

from genhub_orchestrator.adapters.providers.mock import MockProvider
from genhub_orchestrator.config import Settings
from genhub_orchestrator.domain.providers import ProviderAdapter


def build_providers(settings: Settings) -> dict[str, ProviderAdapter]:
    """Every adapter this process can call. Real providers register here later."""
    adapters: list[ProviderAdapter] = [
        MockProvider(latency_ms=settings.mock_latency_ms, failure_rate=settings.mock_failure_rate)
    ]
    return {adapter.name: adapter for adapter in adapters}
