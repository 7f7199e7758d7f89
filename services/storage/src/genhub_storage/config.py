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
