"""Notifier settings: the platform's plus webhook delivery options (env first)."""

from genhub_platform.settings import PlatformSettings
from pydantic import Field, SecretStr, field_validator


class Settings(PlatformSettings):
    service_name: str = "notifier"
    http_port: int = 8084
    database_url: str | None = Field(default=None, validation_alias="NOTIFIER_DATABASE_URL")

    storage_url: str = Field(default="http://127.0.0.1:8083", validation_alias="STORAGE_URL")

    # Fernet key(s) for signing secrets at rest; comma-separated, first one encrypts (rotation).
    encryption_key: SecretStr | None = Field(
        default=None, validation_alias="NOTIFIER_ENCRYPTION_KEY"
    )
    # Delays between attempts; attempts = len(schedule) + 1, then the delivery is dead.
    retry_schedule_s: str = Field(
        default="5,30,300,1800", validation_alias="NOTIFIER_RETRY_SCHEDULE_S"
    )
    retry_jitter: float = Field(default=0.2, ge=0, lt=1, validation_alias="NOTIFIER_RETRY_JITTER")
    allow_private_webhooks: bool = Field(
        default=False, validation_alias="NOTIFIER_ALLOW_PRIVATE_WEBHOOKS"
    )
    webhook_timeout_s: float = Field(
        default=15.0, gt=0, validation_alias="NOTIFIER_WEBHOOK_TIMEOUT_S"
    )
    max_in_flight: int = Field(default=32, ge=1, validation_alias="NOTIFIER_MAX_IN_FLIGHT")
    dispatch_poll_s: float = Field(default=0.5, gt=0, validation_alias="NOTIFIER_DISPATCH_POLL_S")
    # A claimed row is invisible to other replicas this long; a crashed sender's rows return then.
    lease_s: float = Field(default=60.0, gt=0, validation_alias="NOTIFIER_LEASE_S")
    # How long a terminal event may wait for its job.requested before it becomes `no_endpoint`.
    subscription_wait_s: float = Field(
        default=900.0, gt=0, validation_alias="NOTIFIER_SUBSCRIPTION_WAIT_S"
    )
    subscription_recheck_s: float = Field(
        default=5.0, gt=0, validation_alias="NOTIFIER_SUBSCRIPTION_RECHECK_S"
    )

    @field_validator("retry_schedule_s")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        from genhub_notifier.domain.retry import RetrySchedule

        RetrySchedule.parse(value)
        return value

    @property
    def require_https(self) -> bool:
        return self.environment == "production"
