"""Every HTTP adapter against a local fake server speaking that provider's documented API."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from genhub_contracts import ErrorCode, GenerationInput
from genhub_orchestrator.adapters.providers import ProviderRegistry, ProviderSpec
from genhub_orchestrator.adapters.providers.http import parse_retry_after
from genhub_orchestrator.adapters.providers.openai import openai_size
from genhub_orchestrator.domain.providers import (
    GenerationRequest,
    InputImage,
    ProviderAdapter,
    ProviderError,
)
from orchestrator_fake_providers import PNG, FakeState, serve

KINDS = ["openai", "replicate", "fal", "gemini", "stability"]
MODEL_IDS = {
    "openai": "gpt-image-1",
    "replicate": "black-forest-labs/flux-schnell",
    "fal": "fal-ai/flux/dev",
    "gemini": "gemini-2.5-flash-image",
    "stability": "core",
}
KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "replicate": "REPLICATE_API_TOKEN",
    "fal": "FAL_KEY",
    "gemini": "GEMINI_API_KEY",
    "stability": "STABILITY_API_KEY",
}


def request(
    kind: str, n: int = 1, images: tuple[InputImage, ...] = (), **input_: Any
) -> GenerationRequest:
    return GenerationRequest(
        job_id=uuid4(),
        app_id=uuid4(),
        model="m",
        provider_model_id=MODEL_IDS[kind],
        input=GenerationInput.model_validate(
            {"prompt": "a red fox", "seed": 7, "num_outputs": n, **input_}
        ),
        width=1024,
        height=576,
        num_outputs=n,
        images=images,
    )


def adapter(kind: str, state: FakeState, **settings: Any) -> ProviderAdapter:
    registry = ProviderRegistry(env={KEY_ENV[kind]: "sk-test-123"})
    built = registry.adapter(
        ProviderSpec(
            name=kind,
            kind=kind,
            settings={
                "base_url": state.base_url,
                "request_timeout_s": 0.3,
                "poll_interval_s": 0.01,
                "max_wait_s": 2.0,
                **settings,
            },
        )
    )
    assert built is not None
    return built


@pytest.fixture(params=KINDS)
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, FakeState]]:
    async with serve(request.param) as state:
        yield request.param, state


async def fails(adapter_: ProviderAdapter, req: GenerationRequest) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await adapter_.generate(req)
    return info.value


async def test_success_returns_images_and_sends_the_key(fake: tuple[str, FakeState]) -> None:
    kind, state = fake
    tasks: list[str] = []
    images = await adapter(kind, state).generate(request(kind, n=2), tasks.append)
    assert [img.data for img in images] == [PNG, PNG]
    assert all(img.content_type == "image/png" for img in images)
    sent = state.headers[0]
    assert "sk-test-123" in (sent.get("authorization", "") + sent.get("x-goog-api-key", ""))
    assert "a red fox" in str(state.received[0])
    if kind in ("replicate", "fal"):
        assert len(tasks) == 1 and tasks[0]  # the provider task id reaches the attempt log


async def test_429_is_retryable_with_retry_after(fake: tuple[str, FakeState]) -> None:
    kind, state = fake
    state.script, state.retry_after = ["429"], "7"
    error = await fails(adapter(kind, state), request(kind))
    assert error.retryable and error.retry_after_s == 7.0


@pytest.mark.parametrize("behaviour", ["500", "503-html"])
async def test_5xx_is_retryable(fake: tuple[str, FakeState], behaviour: str) -> None:
    kind, state = fake
    state.script = [behaviour]
    error = await fails(adapter(kind, state), request(kind))
    assert error.retryable and error.code is ErrorCode.PROVIDER_ERROR


async def test_slow_answer_times_out(fake: tuple[str, FakeState]) -> None:
    kind, state = fake
    state.script, state.slow_s = ["slow"], 0.6
    error = await fails(adapter(kind, state), request(kind))
    assert error.retryable and error.code is ErrorCode.PROVIDER_TIMEOUT


async def test_malformed_body_is_terminal(fake: tuple[str, FakeState]) -> None:
    kind, state = fake
    state.script = ["malformed"]
    error = await fails(adapter(kind, state), request(kind))
    assert not error.retryable and error.code is ErrorCode.INVALID_OUTPUT


async def test_moderation_refusal_is_content_rejected(fake: tuple[str, FakeState]) -> None:
    kind, state = fake
    state.script = ["moderation"]
    error = await fails(adapter(kind, state), request(kind))
    assert not error.retryable and error.code is ErrorCode.CONTENT_REJECTED


async def test_bad_request_is_invalid_input(fake: tuple[str, FakeState]) -> None:
    kind, state = fake
    state.script = ["invalid"]
    error = await fails(adapter(kind, state), request(kind))
    assert not error.retryable and error.code is ErrorCode.INVALID_INPUT


@pytest.mark.parametrize("kind", ["replicate", "fal"])
async def test_slow_queue_is_polled_until_done(kind: str) -> None:
    async with serve(kind) as state:
        state.polls_before_done = 5
        images = await adapter(kind, state).generate(request(kind))
        assert images[0].data == PNG
        assert max(state.polls.values()) >= 5


@pytest.mark.parametrize("kind", ["replicate", "fal"])
async def test_queue_wait_is_bounded(kind: str) -> None:
    async with serve(kind) as state:
        state.polls_before_done = 10_000
        error = await fails(adapter(kind, state, max_wait_s=0.2), request(kind))
        assert error.code is ErrorCode.PROVIDER_TIMEOUT and error.task_id


@pytest.mark.parametrize("kind", ["replicate", "fal"])
async def test_cancelling_the_call_cancels_the_remote_task(kind: str) -> None:
    async with serve(kind) as state:
        state.polls_before_done = 10_000
        tasks: list[str] = []
        call = asyncio.create_task(adapter(kind, state).generate(request(kind), tasks.append))
        while not tasks:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert state.cancelled == tasks


async def test_replicate_failed_prediction_is_retryable() -> None:
    async with serve("replicate") as state:
        state.script = ["fail"]
        error = await fails(adapter("replicate", state), request("replicate"))
        assert error.retryable and "CUDA" in error.message


async def test_stability_filtered_output_is_content_rejected() -> None:
    async with serve("stability") as state:
        state.script = ["filtered"]
        error = await fails(adapter("stability", state), request("stability"))
        assert error.code is ErrorCode.CONTENT_REJECTED


async def test_openai_unexpected_shape_is_malformed() -> None:
    async with serve("openai") as state:
        state.script = ["wrong-shape"]
        error = await fails(adapter("openai", state), request("openai"))
        assert error.code is ErrorCode.INVALID_OUTPUT


INPUT = InputImage(PNG, "image/png", "inputs/app/x.png")


@pytest.mark.parametrize("kind", KINDS)
async def test_input_images_are_handed_over(kind: str) -> None:
    async with serve(kind) as state:
        await adapter(kind, state).generate(request(kind, images=(INPUT,)))
        sent = str(state.received[0])
        if kind == "openai":
            assert "image[]" in state.received[0]  # multipart edits endpoint
        elif kind == "stability":
            assert state.received[0]["mode"] == "image-to-image"
            assert state.received[0]["image"].startswith("<file")
        else:  # data URI (replicate, fal) or inline_data (gemini)
            assert "iVBOR" in sent


def test_real_providers_are_disabled_without_a_key() -> None:
    registry = ProviderRegistry(env={})
    for kind in KINDS:
        spec = ProviderSpec(name=kind, kind=kind)
        assert registry.adapter(spec) is None and not registry.configured(spec)
    assert registry.adapter(ProviderSpec(name="mock", kind="mock")) is not None
    keyed = ProviderRegistry(env={"MY_KEY": "k"})
    assert (
        keyed.adapter(ProviderSpec(name="o", kind="openai", credentials_env="MY_KEY")) is not None
    )


def test_retry_after_forms() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon", now=now) is None and parse_retry_after(None) is None


def test_openai_sizes_follow_the_model() -> None:
    assert openai_size("gpt-image-1", 1024, 576) == "1536x1024"
    assert openai_size("dall-e-3", 576, 1024) == "1024x1792"
    assert openai_size("dall-e-2", 512, 512) == "512x512"
