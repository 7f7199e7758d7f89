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
    lease_s: float = Field(default=60.0, ge=1, validation_alias="ORCHESTRATOR_LEASE_S")
    max_claims: int = Field(default=3, ge=1, validation_alias="ORCHESTRATOR_MAX_CLAIMS")
    provider_timeout_s: float = Field(
        default=120.0, gt=0, validation_alias="ORCHESTRATOR_PROVIDER_TIMEOUT_S"
    )

    # Built-in mock provider.
    mock_latency_ms: int = Field(default=200, ge=0, validation_alias="ORCHESTRATOR_MOCK_LATENCY_MS")
    mock_failure_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, validation_alias="ORCHESTRATOR_MOCK_FAILURE_RATE"
    )
