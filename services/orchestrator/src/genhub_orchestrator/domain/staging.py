"""Claim-check keys for provider output staged in object storage (docs/internal-apis.md)."""

from uuid import UUID

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def extension_for(content_type: str) -> str:
    return _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), "bin")


def staging_key(app_id: UUID, job_id: UUID, index: int, content_type: str = "image/png") -> str:
    """`staging/{app_id}/{job_id}/{index}.png` (the extension follows the content type)."""
    return f"staging/{app_id}/{job_id}/{index}.{extension_for(content_type)}"
