"""Orchestrator settings: the platform's plus the run queue and the mock provider's knobs."""

from genhub_platform.settings import PlatformSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class Settings(PlatformSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True)

    service_name: str = "orchestrator"
    http_port: int = 8082
    database_url: str | None = Field(default=None, validation_alias="ORCHESTRATOR_DATABASE_URL")

    # Run queue.
    max_concurrency: int = Field(default=8, ge=1, validation_alias="ORCHESTRATOR_MAX_CONCURRENCY")
    poll_interval_s: float = Field(
        default=0.2, gt=0, validation_alias="ORCHESTRATOR_POLL_INTERVAL_S"
    )
    # A short lease with a 1 s heartbeat: a dead process's runs move on within seconds.
    lease_s: float = Field(default=10.0, ge=1, validation_alias="ORCHESTRATOR_LEASE_S")
    heartbeat_s: float = Field(default=1.0, gt=0, validation_alias="ORCHESTRATOR_HEARTBEAT_S")
    max_claims: int = Field(default=3, ge=1, validation_alias="ORCHESTRATOR_MAX_CLAIMS")
    provider_timeout_s: float = Field(
        default=120.0, gt=0, validation_alias="ORCHESTRATOR_PROVIDER_TIMEOUT_S"
    )

    # Built-in mock provider.
    mock_latency_ms: int = Field(default=200, ge=0, validation_alias="ORCHESTRATOR_MOCK_LATENCY_MS")
    mock_failure_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, validation_alias="ORCHESTRATOR_MOCK_FAILURE_RATE"
    )

    # Routing and resilience defaults (a provider's catalog settings override them).
    max_retries: int = Field(default=1, ge=0, le=5, validation_alias="ORCHESTRATOR_MAX_RETRIES")
    retry_base_delay_s: float = Field(
        default=0.2, ge=0, validation_alias="ORCHESTRATOR_RETRY_BASE_DELAY_S"
    )
    breaker_failure_threshold: int = Field(
        default=5, ge=1, validation_alias="ORCHESTRATOR_BREAKER_FAILURE_THRESHOLD"
    )
    breaker_cooldown_s: float = Field(
        default=30.0, gt=0, validation_alias="ORCHESTRATOR_BREAKER_COOLDOWN_S"
    )
    catalog_ttl_s: float = Field(default=2.0, ge=0, validation_alias="ORCHESTRATOR_CATALOG_TTL_S")
    storage_url: str = Field(default="http://127.0.0.1:8083", validation_alias="STORAGE_URL")

    # Prompt enhancement backend: mock | openai | ollama | none.
    enhancer: str = Field(default="mock", validation_alias="ORCHESTRATOR_ENHANCER")
    enhancer_model: str = Field(
        default="gpt-4o-mini", validation_alias="ORCHESTRATOR_ENHANCER_MODEL"
    )
    ollama_url: str = Field(default="http://127.0.0.1:11434", validation_alias="OLLAMA_URL")
