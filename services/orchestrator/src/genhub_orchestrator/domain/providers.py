"""The provider adapter interface every backend (mock, OpenAI, Replicate, ...) implements.

An adapter turns one request into images or raises a typed error: retryable errors (rate
limits, 5xx, timeouts) let the router try the next route; terminal errors (content policy,
bad input) end the job with their code.
"""

from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from genhub_contracts import ErrorCode, GenerationInput


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

    @property
    def provider_params(self) -> dict[str, Any]:
        return dict(self.input.provider_params)


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    content_type: str


class ProviderError(Exception):
    retryable: bool = False

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RetryableProviderError(ProviderError):
    """Worth trying again, here later or on another route."""

    retryable = True


class TerminalProviderError(ProviderError):
    """Retrying cannot help: the job fails with this code."""

    retryable = False


class ProviderTimeout(RetryableProviderError):
    def __init__(self, message: str = "The provider did not answer in time.") -> None:
        super().__init__(ErrorCode.PROVIDER_TIMEOUT, message)


class ProviderAdapter(Protocol):
    """One provider backend. `name` matches `providers.name` in the catalog."""

    name: str

    async def generate(self, request: GenerationRequest) -> list[GeneratedImage]: ...
