"""Settings every service shares, read from the environment first (12-factor).

Endpoints default to the local stack (`make up`) so the same code runs against compose or a
cluster by changing environment variables only.
"""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    """Base class: each service subclasses it, sets `service_name` and adds its own fields.

    A service's own database URL comes from `<SERVICE>_DATABASE_URL` (set by the subclass via a
    validation alias); without it the URL is built from the libpq-style PG* variables and the
    database `genhub_<service>`.
    """

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    service_name: str = "genhub"
    environment: Literal["local", "test", "production"] = Field(
        default="local", validation_alias="GENHUB_ENV"
    )
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(default="json", validation_alias="LOG_FORMAT")

    http_host: str = "127.0.0.1"
    http_port: int = 8080

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    kafka_max_handler_attempts: int = Field(default=3, ge=1)
    # Namespace for every topic this process consumes, publishes and creates ("" = the real
    # ones). A benchmark or an isolated test run gives its own process a prefix so it neither
    # sees nor feeds the shared topics.
    kafka_topic_prefix: str = Field(default="", validation_alias="KAFKA_TOPIC_PREFIX")
    # Batch consumers, while busy: the broker answers a fetch once this many bytes are ready or
    # the wait is over. Under load that turns many one-record fetches, offset commits and
    # transactions into a few bigger ones, for at most the wait in added latency per hop.
    # Busy means receiving at least KAFKA_FETCH_BUSY_FROM_PER_S records a second; below that a
    # fetch is answered at its first byte and an idle one every 500 ms (fetchpace.py). 0: always
    # busy (an idle consumer's fetches then come back empty every wait: at 25 ms the idle
    # local stack spent about a third of a core on them, against an eighth paced).
    kafka_fetch_min_bytes: int = Field(
        default=16384, ge=1, validation_alias="KAFKA_FETCH_MIN_BYTES"
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=25, ge=0, le=500, validation_alias="KAFKA_FETCH_MAX_WAIT_MS"
    )
    kafka_fetch_busy_from_per_s: float = Field(
        default=50.0, ge=0, validation_alias="KAFKA_FETCH_BUSY_FROM_PER_S"
    )

    database_url: str | None = None
    pghost: str = Field(default="127.0.0.1", validation_alias="PGHOST")
    pgport: int = Field(default=5432, validation_alias="PGPORT")
    pguser: str = Field(default="genhub", validation_alias="PGUSER")
    pgpassword: SecretStr = Field(default=SecretStr("genhub"), validation_alias="PGPASSWORD")
    db_pool_size: int = 10
    # How a pooled connection is checked before use. "local" (default): the driver's own view
    # of its socket (a server restart or pg_terminate_backend closes it, and asyncpg notices the
    # close) with no round trip; a connection found closed is replaced. "roundtrip" (SQLAlchemy
    # pool_pre_ping: BEGIN; SELECT; ROLLBACK on every checkout, three extra round trips per
    # transaction) also catches a peer that vanished without closing (a dropped network path).
    db_pre_ping: Literal["roundtrip", "local"] = Field(
        default="local", validation_alias="DB_PRE_PING"
    )

    outbox_poll_interval_s: float = 0.5
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )

    @property
    def database_name(self) -> str:
        return f"genhub_{self.service_name}"

    @property
    def async_database_url(self) -> str:
        """SQLAlchemy URL with the asyncpg driver."""
        if self.database_url:
            url = self.database_url
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+asyncpg://" + url.removeprefix(prefix)
            return url
        password = self.pgpassword.get_secret_value()
        return (
            f"postgresql+asyncpg://{self.pguser}:{password}@{self.pghost}:{self.pgport}/"
            f"{self.database_name}"
        )
