"""Billing settings: the platform's, plus holds, batches and the background sweeps."""

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

    # job.requested batches: up to this many records, waiting at most this long for them.
    reserve_batch_max: int = Field(default=500, ge=1, validation_alias="BILLING_RESERVE_BATCH_MAX")
    reserve_batch_timeout_ms: int = Field(
        default=25, ge=0, validation_alias="BILLING_RESERVE_BATCH_TIMEOUT_MS"
    )
    # Grant-lot expiry sweep and the plan scheduler.
    lot_sweep_interval_s: float = Field(
        default=30.0, gt=0, validation_alias="BILLING_LOT_SWEEP_INTERVAL_S"
    )
    plan_interval_s: float = Field(default=60.0, gt=0, validation_alias="BILLING_PLAN_INTERVAL_S")
    sweep_batch: int = Field(default=200, ge=1, validation_alias="BILLING_SWEEP_BATCH")
