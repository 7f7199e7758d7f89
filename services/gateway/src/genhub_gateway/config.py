"""Gateway settings: platform defaults plus the admin token, upstream URLs and cache TTLs."""

from genhub_platform.settings import PlatformSettings
from pydantic import Field, SecretStr


class Settings(PlatformSettings):
    service_name: str = "gateway"
    http_port: int = 8080
    database_url: str | None = Field(default=None, validation_alias="GATEWAY_DATABASE_URL")

    # Required on purpose: an admin API with a default token is an open door.
    admin_token: SecretStr = Field(validation_alias="GENHUB_ADMIN_TOKEN", min_length=1)

    billing_url: str = Field(default="http://127.0.0.1:8081", validation_alias="BILLING_URL")
    orchestrator_url: str = Field(
        default="http://127.0.0.1:8082", validation_alias="ORCHESTRATOR_URL"
    )
    storage_url: str = Field(default="http://127.0.0.1:8083", validation_alias="STORAGE_URL")
    notifier_url: str = Field(default="http://127.0.0.1:8084", validation_alias="NOTIFIER_URL")
    upstream_timeout_s: float = Field(default=5.0, validation_alias="GATEWAY_UPSTREAM_TIMEOUT_S")

    models_cache_ttl_s: float = Field(default=30.0, validation_alias="GATEWAY_MODELS_CACHE_TTL_S")
    # How long a revoked key or a disabled app may still pass on another replica.
    auth_cache_ttl_s: float = Field(default=5.0, validation_alias="GATEWAY_AUTH_CACHE_TTL_S")

    # Idempotency-Key records live at least this long (24 h); older ones are pruned.
    idempotency_ttl_s: float = Field(default=86400.0, validation_alias="GATEWAY_IDEMPOTENCY_TTL_S")
    # How long an in-flight request holds its key before a retry may take it over.
    idempotency_lease_s: float = Field(default=60.0, validation_alias="GATEWAY_IDEMPOTENCY_LEASE_S")
    # `Prefer: wait`: how often the read-model is polled for the job's end.
    wait_poll_interval_s: float = Field(
        default=0.1, validation_alias="GATEWAY_WAIT_POLL_INTERVAL_S"
    )

    # SSRF: webhook URLs and input image URLs on loopback/private networks are refused unless
    # the deployment allows them (the local stack does; production must not).
    allow_private_urls: bool = Field(default=False, validation_alias="GATEWAY_ALLOW_PRIVATE_URLS")

    # Defaults for new apps (each app's own values are editable through the admin API).
    default_app_rate_limit: int = Field(
        default=6000, ge=1, validation_alias="GATEWAY_DEFAULT_APP_RATE_LIMIT"
    )
    default_user_rate_limit: int = Field(
        default=600, ge=1, validation_alias="GATEWAY_DEFAULT_USER_RATE_LIMIT"
    )
    # Failed authentications allowed per source address per minute; then 429.
    auth_failure_limit: int = Field(default=30, ge=1, validation_alias="GATEWAY_AUTH_FAILURE_LIMIT")

    # Request bodies above these sizes get 413 payload_too_large.
    max_body_bytes: int = Field(default=1024 * 1024, validation_alias="GATEWAY_MAX_BODY_BYTES")
    max_upload_bytes: int = Field(
        default=20 * 1024 * 1024, validation_alias="GATEWAY_MAX_UPLOAD_BYTES"
    )

    # false: an API-only replica that does not consume job events into the read-model (some
    # other replica, or a projector deployment, must). Lets the API scale on its own.
    project_events: bool = Field(default=True, validation_alias="GATEWAY_PROJECT_EVENTS")
