"""Notifier settings: the platform's plus webhook delivery options (env first)."""

from genhub_platform.settings import PlatformSettings
from pydantic import Field, SecretStr, field_validator

from genhub_notifier.domain.retry import PRODUCTION_SCHEDULE, RetrySchedule


class Settings(PlatformSettings):
    service_name: str = "notifier"
    http_port: int = 8084
    database_url: str | None = Field(default=None, validation_alias="NOTIFIER_DATABASE_URL")

    storage_url: str = Field(default="http://127.0.0.1:8083", validation_alias="STORAGE_URL")

    # Fernet key(s) for signing secrets at rest; comma-separated, first one encrypts (rotation).
    encryption_key: SecretStr | None = Field(
        default=None, validation_alias="NOTIFIER_ENCRYPTION_KEY"
    )
    # Seconds before each attempt, each counted from the previous one (first = before the
    # first attempt). The local stack compresses it to "0,1,2,3,4".
    retry_schedule: str = Field(
        default=PRODUCTION_SCHEDULE, validation_alias="NOTIFIER_RETRY_SCHEDULE"
    )
    retry_jitter: float = Field(default=0.2, ge=0, lt=1, validation_alias="NOTIFIER_RETRY_JITTER")
    allow_private_webhooks: bool = Field(
        default=False, validation_alias="NOTIFIER_ALLOW_PRIVATE_WEBHOOKS"
    )
    webhook_timeout_s: float = Field(
        default=15.0, gt=0, validation_alias="NOTIFIER_WEBHOOK_TIMEOUT_S"
    )
    max_in_flight: int = Field(default=64, ge=1, validation_alias="NOTIFIER_MAX_IN_FLIGHT")
    max_in_flight_per_endpoint: int = Field(
        default=4, ge=1, validation_alias="NOTIFIER_MAX_IN_FLIGHT_PER_ENDPOINT"
    )
    dispatch_poll_s: float = Field(default=0.5, gt=0, validation_alias="NOTIFIER_DISPATCH_POLL_S")
    # A claimed row is invisible to other replicas this long; a crashed sender's rows return then.
    lease_s: float = Field(default=60.0, gt=0, validation_alias="NOTIFIER_LEASE_S")
    # How long a job event may wait for its job.requested before it becomes `no_endpoint`.
    subscription_wait_s: float = Field(
        default=900.0, gt=0, validation_alias="NOTIFIER_SUBSCRIPTION_WAIT_S"
    )
    # How long a succeeded/failed/cancelled job's event waits for billing's tokens.settled.
    settlement_wait_s: float = Field(
        default=30.0, ge=0, validation_alias="NOTIFIER_SETTLEMENT_WAIT_S"
    )
    subscription_recheck_s: float = Field(
        default=5.0, gt=0, validation_alias="NOTIFIER_SUBSCRIPTION_RECHECK_S"
    )
    # After rotate-secret the old secret keeps signing (second signature) this long.
    secret_rotation_grace_s: float = Field(
        default=86400.0, ge=0, validation_alias="NOTIFIER_SECRET_ROTATION_GRACE_S"
    )
    # An endpoint whose attempts all failed for this long is disabled.
    endpoint_disable_after_s: float = Field(
        default=5 * 86400.0, gt=0, validation_alias="NOTIFIER_ENDPOINT_DISABLE_AFTER_S"
    )

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        RetrySchedule.parse(value)
        return value

    @property
    def require_https(self) -> bool:
        """Plain http only in the local development profile."""
        return self.environment != "local"
