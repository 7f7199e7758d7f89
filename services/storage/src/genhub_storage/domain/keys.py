"""Object key naming. Keys embed the tenant and the job so a key alone never crosses tenants."""

from uuid import UUID

from genhub_storage.domain.images import EncodeFormat

OUTPUTS_PREFIX = "outputs"
STAGING_PREFIX = "staging"


def output_key(app_id: UUID, job_id: UUID, index: int, fmt: EncodeFormat) -> str:
    """`outputs/{app_id}/{job_id}/{index}.{ext}` (docs/internal-apis.md)."""
    return f"{OUTPUTS_PREFIX}/{app_id}/{job_id}/{index}.{fmt.extension}"


def staging_prefix(app_id: UUID, job_id: UUID) -> str:
    return f"{STAGING_PREFIX}/{app_id}/{job_id}/"


def is_staged_for(key: str, app_id: UUID, job_id: UUID) -> bool:
    """A claim check may only point into its own job's staging area (no `..`, no other tenant)."""
    prefix = staging_prefix(app_id, job_id)
    rest = key.removeprefix(prefix)
    return key.startswith(prefix) and bool(rest) and "/" not in rest and rest not in (".", "..")
