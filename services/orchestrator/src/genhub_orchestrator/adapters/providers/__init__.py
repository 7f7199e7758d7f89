"""Provider adapters, built from catalog rows: one module per provider kind.

A catalog provider row names its `kind` (the adapter module), the environment variable that
holds its key (`credentials_env`, else the kind's default) and its settings (`base_url`,
timeouts, mock behaviour). A real provider without a key in the environment has no adapter:
its routes are skipped, so the default local stack runs on the mock alone. Adding a provider
is one module here plus one catalog row.
"""

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from genhub_orchestrator.adapters.providers.fal import FalProvider
from genhub_orchestrator.adapters.providers.gemini import GeminiProvider
from genhub_orchestrator.adapters.providers.http import HttpProvider, ProviderConfig
from genhub_orchestrator.adapters.providers.mock import MockProvider
from genhub_orchestrator.adapters.providers.openai import OpenAIImagesProvider
from genhub_orchestrator.adapters.providers.replicate import ReplicateProvider
from genhub_orchestrator.adapters.providers.stability import StabilityProvider
from genhub_orchestrator.domain.providers import ProviderAdapter


@dataclass(frozen=True)
class HttpKind:
    factory: Callable[..., HttpProvider]
    key_env: str
    base_url_env: str
    default_base_url: str


HTTP_KINDS: dict[str, HttpKind] = {
    "openai": HttpKind(
        OpenAIImagesProvider, "OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com"
    ),
    "replicate": HttpKind(
        ReplicateProvider, "REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "https://api.replicate.com"
    ),
    "fal": HttpKind(FalProvider, "FAL_KEY", "FAL_QUEUE_URL", "https://queue.fal.run"),
    "gemini": HttpKind(
        GeminiProvider,
        "GEMINI_API_KEY",
        "GEMINI_BASE_URL",
        "https://generativelanguage.googleapis.com",
    ),
    "stability": HttpKind(
        StabilityProvider, "STABILITY_API_KEY", "STABILITY_BASE_URL", "https://api.stability.ai"
    ),
}
KINDS = frozenset({"mock", *HTTP_KINDS})


@dataclass(frozen=True)
class ProviderSpec:
    """A catalog provider row, as far as building its adapter goes."""

    name: str
    kind: str
    credentials_env: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        return json.dumps(
            [self.kind, self.credentials_env, dict(self.settings)], sort_keys=True, default=str
        )


@dataclass(frozen=True)
class MockDefaults:
    latency_ms: int = 200
    failure_rate: float = 0.0


class ProviderRegistry:
    """Adapters by provider name, (re)built when a provider's catalog row changes."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        mock: MockDefaults = MockDefaults(),
        transport: httpx.AsyncBaseTransport | None = None,
        overrides: Mapping[str, ProviderAdapter] | None = None,
    ) -> None:
        self._env = os.environ if env is None else env
        self._overrides = dict(overrides or {})  # tests: a fixed adapter for a provider name
        self._mock = mock
        self._transport = transport
        self._built: dict[str, tuple[str, ProviderAdapter | None]] = {}

    def adapter(self, spec: ProviderSpec) -> ProviderAdapter | None:
        if spec.name in self._overrides:
            return self._overrides[spec.name]
        fingerprint = spec.fingerprint()
        cached = self._built.get(spec.name)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        adapter = self.build(spec)
        self._built[spec.name] = (fingerprint, adapter)
        return adapter

    def configured(self, spec: ProviderSpec) -> bool:
        """Has this provider what it needs to be called (a key for real providers)?"""
        if spec.kind == "mock":
            return True
        kind = HTTP_KINDS.get(spec.kind)
        return kind is not None and bool(self._env.get(spec.credentials_env or kind.key_env))

    def build(self, spec: ProviderSpec) -> ProviderAdapter | None:
        s = spec.settings
        if spec.kind == "mock":
            return MockProvider(
                name=spec.name,
                latency_ms=int(s.get("latency_ms", self._mock.latency_ms)),
                failure_rate=float(s.get("failure_rate", self._mock.failure_rate)),
                failure_kind=str(s.get("failure_kind", "retryable")),
            )
        kind = HTTP_KINDS.get(spec.kind)
        if kind is None:
            return None
        key = self._env.get(spec.credentials_env or kind.key_env)
        if not key:
            return None  # disabled without a key
        base_url = str(
            s.get("base_url") or self._env.get(kind.base_url_env) or kind.default_base_url
        )
        config = ProviderConfig(
            name=spec.name,
            base_url=base_url,
            api_key=key,
            request_timeout_s=float(s.get("request_timeout_s", 60.0)),
            poll_interval_s=float(s.get("poll_interval_s", 1.0)),
            max_wait_s=float(s.get("max_wait_s", 300.0)),
            settings=dict(s),
        )
        return kind.factory(config, transport=self._transport)
