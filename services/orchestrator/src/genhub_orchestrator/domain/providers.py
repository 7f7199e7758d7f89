"""The provider adapter interface every backend (mock, OpenAI, Replicate, ...) implements.

An adapter turns one request into images or raises a typed error: retryable errors (rate
limits, 5xx, timeouts) may be retried here later or on the next route; terminal errors
(content policy, bad input, a body we cannot read) end the job with their code.

A running adapter call is stopped by cancelling its asyncio task: adapters with a remote
task (Replicate, fal.ai) send the provider's cancel call on the way out.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from genhub_contracts import ErrorCode, GenerationInput


@dataclass(frozen=True)
class InputImage:
    """An input image for image-to-image, already fetched from storage."""

    data: bytes
    content_type: str
    key: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    job_id: UUID
    app_id: UUID
    model: str
    provider_model_id: str
    input: GenerationInput
    width: int
    height: int
    num_outputs: int
    route_settings: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None  # the prompt to send (enhanced or the original)
    images: tuple[InputImage, ...] = ()

    @property
    def provider_params(self) -> dict[str, Any]:
        return dict(self.input.provider_params)

    @property
    def effective_prompt(self) -> str:
        return self.prompt or self.input.prompt

    @property
    def aspect_ratio(self) -> str:
        return self.input.aspect_ratio


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    content_type: str


class ProviderError(Exception):
    retryable: bool = False

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after_s: float | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.task_id = task_id


class RetryableProviderError(ProviderError):
    """Worth trying again, here later or on another route."""

    retryable = True


class TerminalProviderError(ProviderError):
    """Retrying cannot help: the job fails with this code."""

    retryable = False


class ProviderTimeout(RetryableProviderError):
    def __init__(
        self, message: str = "The provider did not answer in time.", *, task_id: str | None = None
    ) -> None:
        super().__init__(ErrorCode.PROVIDER_TIMEOUT, message, task_id=task_id)


TaskCallback = Callable[[str], None]
"""Told the provider's task id as soon as the provider assigns one (for the attempt log)."""


class ProviderAdapter(Protocol):
    """One provider backend. `name` matches `providers.name` in the catalog."""

    name: str

    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]: ...
