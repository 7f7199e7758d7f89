"""Billing settings: the platform's, plus how long holds live and how often they are swept."""

from genhub_platform.settings import PlatformSettings
from pydantic import Field


class Settings(PlatformSettings):
    service_name: str = "billing"
    http_port: int = Field(default=8081, validation_alias="BILLING_HTTP_PORT")
    database_url: str | None = Field(default=None, validation_alias="BILLING_DATABASE_URL")

    # A hold that is neither posted nor voided by then is voided by the sweeper, so a job lost
    # somewhere downstream never keeps a user's tokens reserved forever.
    hold_ttl_s: int = Field(default=1800, ge=1, validation_alias="BILLING_HOLD_TTL_S")
    hold_sweep_interval_s: float = Field(
        default=10.0, gt=0, validation_alias="BILLING_HOLD_SWEEP_INTERVAL_S"
    )
    hold_sweep_batch: int = Field(default=100, ge=1, validation_alias="BILLING_HOLD_SWEEP_BATCH")
