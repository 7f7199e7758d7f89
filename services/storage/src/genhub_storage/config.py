"""Storage settings: platform settings plus output limits, retention and URL lifetime."""

from genhub_platform.settings import PlatformSettings
from pydantic import Field

MIB = 1024 * 1024


class Settings(PlatformSettings):
    service_name: str = "storage"
    http_port: int = 8083
    database_url: str | None = Field(default=None, validation_alias="STORAGE_DATABASE_URL")

    # A staged provider output larger than this is refused without being decoded.
    max_output_bytes: int = Field(
        default=25 * MIB, ge=1, validation_alias="STORAGE_MAX_OUTPUT_BYTES"
    )
    # Decompression-bomb guard: width * height above this is refused before pixels are decoded.
    max_image_pixels: int = Field(
        default=40_000_000, ge=1, validation_alias="STORAGE_MAX_IMAGE_PIXELS"
    )
    output_retention_days: int = Field(
        default=90, ge=1, validation_alias="STORAGE_OUTPUT_RETENTION_DAYS"
    )
    # S3 presigned URLs are valid for at most 7 days.
    presign_ttl_s: int = Field(
        default=3600, ge=1, le=7 * 24 * 3600, validation_alias="STORAGE_PRESIGN_TTL_S"
    )
    # How long start-up waits for object storage before giving up (ensure_bucket).
    startup_timeout_s: float = Field(
        default=30.0, ge=0, validation_alias="STORAGE_STARTUP_TIMEOUT_S"
    )

    # Inputs (uploads and imported URLs).
    max_upload_bytes: int = Field(
        default=10 * MIB, ge=1, validation_alias="STORAGE_MAX_UPLOAD_BYTES"
    )
    max_upload_pixels: int = Field(
        default=40_000_000, ge=1, validation_alias="STORAGE_MAX_UPLOAD_PIXELS"
    )
    input_retention_hours: int = Field(
        default=24, ge=1, validation_alias="STORAGE_INPUT_RETENTION_HOURS"
    )
    # Remote input URLs: private/loopback targets only in the local stack; https in production.
    allow_private_urls: bool = Field(default=False, validation_alias="STORAGE_ALLOW_PRIVATE_URLS")
    # None: https only when GENHUB_ENV=production.
    require_https_setting: bool | None = Field(
        default=None, validation_alias="STORAGE_REQUIRE_HTTPS"
    )
    fetch_timeout_s: float = Field(default=10.0, gt=0, validation_alias="STORAGE_FETCH_TIMEOUT_S")
    fetch_max_redirects: int = Field(
        default=3, ge=0, le=10, validation_alias="STORAGE_FETCH_MAX_REDIRECTS"
    )

    # Lifecycle: how often the sweep runs in the service (0 = never; `genhub-storage sweep`).
    sweep_interval_s: float = Field(
        default=3600.0, ge=0, validation_alias="STORAGE_SWEEP_INTERVAL_S"
    )
    staging_max_age_hours: float = Field(
        default=24.0, gt=0, validation_alias="STORAGE_STAGING_MAX_AGE_HOURS"
    )
    # How long job.generated waits (by redelivery) for its job.requested to arrive.
    spec_wait_s: float = Field(default=30.0, ge=0, validation_alias="STORAGE_SPEC_WAIT_S")

    @property
    def require_https(self) -> bool:
        if self.require_https_setting is not None:
            return self.require_https_setting
        return self.environment == "production"
