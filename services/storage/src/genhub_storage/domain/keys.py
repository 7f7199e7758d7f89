"""Object key naming. Keys embed the tenant and the job so a key alone never crosses tenants."""

from uuid import UUID

from genhub_storage.domain.images import EncodeFormat

OUTPUTS_PREFIX = "outputs"
STAGING_PREFIX = "staging"
INPUTS_PREFIX = "inputs"


def output_key(app_id: UUID, job_id: UUID, index: int, fmt: EncodeFormat) -> str:
    """`outputs/{app_id}/{job_id}/{index}.{ext}` (docs/internal-apis.md)."""
    return f"{OUTPUTS_PREFIX}/{app_id}/{job_id}/{index}.{fmt.extension}"


def thumbnail_key(app_id: UUID, job_id: UUID, index: int) -> str:
    """Stored alongside the output: `outputs/{app_id}/{job_id}/{index}.thumb.webp`."""
    return f"{OUTPUTS_PREFIX}/{app_id}/{job_id}/{index}.thumb.webp"


def input_key(app_id: UUID, name: UUID, fmt: EncodeFormat) -> str:
    return f"{INPUTS_PREFIX}/{app_id}/{name}.{fmt.extension}"


def app_prefixes(app_id: UUID) -> list[str]:
    """Everything an app owns in the bucket (erasure of a whole app)."""
    return [f"{p}/{app_id}/" for p in (OUTPUTS_PREFIX, INPUTS_PREFIX, STAGING_PREFIX)]


def staging_prefix(app_id: UUID, job_id: UUID) -> str:
    return f"{STAGING_PREFIX}/{app_id}/{job_id}/"


def is_staged_for(key: str, app_id: UUID, job_id: UUID) -> bool:
    """A claim check may only point into its own job's staging area (no `..`, no other tenant)."""
    prefix = staging_prefix(app_id, job_id)
    return _single_name_under(key, prefix)


def is_output_of_app(key: str, app_id: UUID) -> bool:
    """A cache hit's claim check: a published output of the same app, nothing else."""
    prefix = f"{OUTPUTS_PREFIX}/{app_id}/"
    rest = key.removeprefix(prefix)
    parts = rest.split("/")
    return (
        key.startswith(prefix)
        and len(parts) == 2
        and all(p and p not in (".", "..") for p in parts)
    )


def is_input_of_app(key: str, app_id: UUID) -> bool:
    return _single_name_under(key, f"{INPUTS_PREFIX}/{app_id}/")


def _single_name_under(key: str, prefix: str) -> bool:
    rest = key.removeprefix(prefix)
    return key.startswith(prefix) and bool(rest) and "/" not in rest and rest not in (".", "..")
