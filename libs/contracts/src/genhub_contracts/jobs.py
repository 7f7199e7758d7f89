"""Job-shaped building blocks that several events carry."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from genhub_contracts.enums import ErrorCode, OutputFormat, Plan

MAX_OUTPUTS = 4
MAX_PROMPT_CHARS = 4000


class GenerationInput(BaseModel):
    """What the app asked to generate. Unknown keys are provider parameters, passed through."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    images: list[str] = Field(default_factory=list, max_length=8)
    aspect_ratio: str = Field(default="1:1", pattern=r"^\d{1,2}:\d{1,2}$")
    width: int | None = Field(default=None, ge=64, le=4096)
    height: int | None = Field(default=None, ge=64, le=4096)
    num_outputs: int = Field(default=1, ge=1, le=MAX_OUTPUTS)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    style: str | None = Field(default=None, max_length=64)
    output_format: OutputFormat = OutputFormat.PNG
    quality: Literal["standard", "hd"] = "standard"
    dpi: int | None = Field(default=None, ge=72, le=600, description="pdf output only")

    @property
    def provider_params(self) -> dict[str, Any]:
        """Keys the schema does not know: handed to the provider as they are."""
        return dict(self.model_extra or {})


WatermarkPosition = Literal["bottom-right", "bottom-left", "top-right", "top-left", "center"]


class Watermark(BaseModel):
    """Text stamped on free-tier outputs when the app asks for it."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(min_length=1, max_length=64)
    position: WatermarkPosition = "bottom-right"
    opacity: float = Field(default=0.5, gt=0, le=1)


class AppOptions(BaseModel):
    """The app's settings that shape a job, snapshotted by the gateway when the job is accepted.

    A snapshot (not a lookup) keeps every downstream service free of calls back to the gateway
    and makes a job's behaviour independent of later edits to its app.
    """

    model_config = ConfigDict(frozen=True)

    cache: bool = True
    charge_cache_hits: bool = False
    enhance_prompt: bool = False
    watermark: Watermark | None = None
    output_retention_days: int = Field(default=90, ge=1, le=3650)


class JobSpec(BaseModel):
    """Everything downstream services need to run a job, fixed when it is accepted.

    `plan` is the end user's tier: `free` routes cheapest-first and may be watermarked.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=64)
    input: GenerationInput
    priority: int = Field(default=5, ge=0, le=9)
    plan: Plan = Plan.FREE
    webhook_url: HttpUrl | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    cache: bool = Field(default=True, description="False opts this request out of the cache")
    enhance_prompt: bool | None = Field(default=None, description="None: the app's default")
    app: AppOptions = Field(default_factory=AppOptions)

    @property
    def uses_cache(self) -> bool:
        return self.cache and self.app.cache

    @property
    def wants_enhancement(self) -> bool:
        return self.app.enhance_prompt if self.enhance_prompt is None else self.enhance_prompt


class StagedOutput(BaseModel):
    """Claim check: a provider's raw output staged in object storage, not yet validated."""

    index: int = Field(ge=0)
    bucket: str
    key: str
    content_type: str | None = None


class OutputFile(BaseModel):
    """A validated, published output object."""

    index: int = Field(ge=0)
    key: str
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str


class ErrorInfo(BaseModel):
    code: ErrorCode
    message: str
