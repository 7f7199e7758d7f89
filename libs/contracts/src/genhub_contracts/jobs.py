"""Job-shaped building blocks that several events carry."""

from typing import Any

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

    @property
    def provider_params(self) -> dict[str, Any]:
        """Keys the schema does not know: handed to the provider as they are."""
        return dict(self.model_extra or {})


class JobSpec(BaseModel):
    """Everything downstream services need to run a job, fixed when it is accepted."""

    model_config = ConfigDict(frozen=True)

    user_id: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=64)
    input: GenerationInput
    priority: int = Field(default=5, ge=0, le=9)
    plan: Plan = Plan.FREE
    webhook_url: HttpUrl | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


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
