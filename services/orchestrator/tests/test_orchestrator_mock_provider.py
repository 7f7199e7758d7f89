import io
import random
import time
from uuid import uuid4

import pytest
from genhub_contracts import ErrorCode, GenerationInput
from genhub_orchestrator.adapters.providers.mock import MockProvider, render_mock_image
from genhub_orchestrator.domain.providers import (
    GenerationRequest,
    RetryableProviderError,
    TerminalProviderError,
)
from PIL import Image


def request(num_outputs: int = 2, **params: object) -> GenerationRequest:
    gen_input = GenerationInput.model_validate(
        {"prompt": "a lighthouse in a storm", "seed": 42, "num_outputs": num_outputs, **params}
    )
    return GenerationRequest(
        job_id=uuid4(),
        app_id=uuid4(),
        model="mock",
        provider_model_id="mock-v1",
        input=gen_input,
        width=320,
        height=192,
        num_outputs=num_outputs,
    )


def test_same_prompt_and_seed_give_the_same_bytes() -> None:
    a = render_mock_image("a cat", 7, 0, 256, 256)
    assert a == render_mock_image("a cat", 7, 0, 256, 256)
    assert a != render_mock_image("a cat", 8, 0, 256, 256)
    assert a != render_mock_image("a dog", 7, 0, 256, 256)


def test_each_index_is_a_different_image() -> None:
    images = {render_mock_image("a cat", 7, i, 256, 256) for i in range(4)}
    assert len(images) == 4


def test_png_decodes_with_the_requested_size() -> None:
    data = render_mock_image("a cat", 7, 0, 1344, 768)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        assert img.size == (1344, 768)
        img.verify()


async def test_generate_returns_one_png_per_output_deterministically() -> None:
    provider = MockProvider(latency_ms=0)
    first = await provider.generate(request(num_outputs=3))
    second = await provider.generate(request(num_outputs=3))
    assert [i.data for i in first] == [i.data for i in second]
    assert len({i.data for i in first}) == 3
    assert all(i.content_type == "image/png" for i in first)
    with Image.open(io.BytesIO(first[0].data)) as img:
        assert img.size == (320, 192)


async def test_mock_fail_param_fails_with_provider_error() -> None:
    with pytest.raises(TerminalProviderError) as exc:
        await MockProvider(latency_ms=0).generate(request(mock_fail=True))
    assert exc.value.code is ErrorCode.PROVIDER_ERROR


async def test_mock_latency_param_overrides_default() -> None:
    provider = MockProvider(latency_ms=5_000)
    started = time.perf_counter()
    await provider.generate(request(num_outputs=1, mock_latency_ms=30))
    elapsed = time.perf_counter() - started
    assert 0.03 <= elapsed < 2


async def test_bad_mock_latency_is_invalid_input() -> None:
    with pytest.raises(TerminalProviderError) as exc:
        await MockProvider(latency_ms=0).generate(request(mock_latency_ms="soon"))
    assert exc.value.code is ErrorCode.INVALID_INPUT


async def test_failure_rate_raises_retryable_errors() -> None:
    always = MockProvider(latency_ms=0, failure_rate=1.0, rng=random.Random(1))
    with pytest.raises(RetryableProviderError):
        await always.generate(request())
    never = MockProvider(latency_ms=0, failure_rate=0.0)
    assert len(await never.generate(request())) == 2


def test_thumbnails_are_valid_deterministic_pngs_of_the_requested_size() -> None:
    data = render_mock_image("a cat", 7, 0, 64, 96)
    assert data == render_mock_image("a cat", 7, 0, 64, 96)
    assert data != render_mock_image("a cat", 7, 1, 64, 96)
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # decodes every row: a broken IDAT or CRC would raise here
        assert img.format == "PNG"
        assert img.size == (64, 96)
        assert img.mode == "RGB"
