"""What a job's spec decides for its outputs: watermark, retention, pdf resolution."""

from dataclasses import dataclass
from uuid import UUID

from genhub_contracts import Plan
from genhub_contracts.jobs import JobSpec, Watermark

from genhub_storage.domain.images import DEFAULT_DPI


@dataclass(frozen=True, slots=True)
class OutputRules:
    plan: str
    app_watermark: Watermark | None  # what the app asks for; applied to free users only
    retention_days: int
    dpi: int = DEFAULT_DPI

    @property
    def watermark(self) -> Watermark | None:
        """Free-tier users get the app's watermark; paid tiers never do (unknown = paid)."""
        return self.app_watermark if self.plan == Plan.FREE.value else None


@dataclass(frozen=True, slots=True)
class SpecFacts:
    """What storage keeps of a job's spec (a `job_specs` row to be written): plain values, so
    recording a batch of job.requested builds no ORM objects."""

    job_id: UUID
    app_id: UUID
    user_id: str
    plan: str
    watermark_text: str | None
    watermark_position: str | None
    watermark_opacity: float | None
    retention_days: int
    dpi: int | None


def rules_from_spec(spec: JobSpec) -> OutputRules:
    return OutputRules(
        plan=spec.plan.value,
        app_watermark=spec.app.watermark,
        retention_days=spec.app.output_retention_days,
        dpi=spec.input.dpi or DEFAULT_DPI,
    )


def default_rules(retention_days: int) -> OutputRules:
    """When job.requested was never seen: no watermark (never mark a possibly paid user's
    output), the deployment's retention, the default dpi."""
    return OutputRules(plan="unknown", app_watermark=None, retention_days=retention_days)
