"""Prompt enhancers (OpenAI chat, Ollama, mock) and input images, over httpx MockTransport."""

import json
from uuid import uuid4

import httpx
import pytest
from genhub_contracts import ErrorCode
from genhub_orchestrator.adapters.inputs import InputFetcher
from genhub_orchestrator.adapters.llm import (
    MockEnhancer,
    OllamaEnhancer,
    OpenAIChatEnhancer,
    build_enhancer,
    enhance_or_keep,
)
from genhub_orchestrator.domain.providers import TerminalProviderError
from orchestrator_fake_providers import PNG


async def test_openai_chat_enhancer_sends_the_prompt_and_reads_the_answer() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer sk-1"
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": '"a vivid fox"'}}]})

    enhancer = OpenAIChatEnhancer(
        base_url="http://llm", api_key="sk-1", model="m", transport=httpx.MockTransport(handler)
    )
    assert await enhancer.enhance("a fox") == "a vivid fox"
    assert seen[0]["model"] == "m" and "a fox" in json.dumps(seen[0]["messages"])


async def test_ollama_enhancer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/chat" and json.loads(request.content)["stream"] is False
        return httpx.Response(
            200, json={"message": {"role": "assistant", "content": "a fox at dawn"}}
        )

    enhancer = OllamaEnhancer(
        base_url="http://ollama", model="llama3", transport=httpx.MockTransport(handler)
    )
    assert await enhancer.enhance("a fox") == "a fox at dawn"


async def test_a_failing_enhancer_keeps_the_original_prompt() -> None:
    broken = OllamaEnhancer(
        base_url="http://ollama",
        model="m",
        transport=httpx.MockTransport(lambda r: httpx.Response(500)),
    )
    assert await enhance_or_keep(broken, "a fox") is None
    empty = OllamaEnhancer(
        base_url="http://ollama",
        model="m",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json={"message": {"content": " "}})
        ),
    )
    assert await enhance_or_keep(empty, "a fox") is None
    assert await enhance_or_keep(None, "a fox") is None
    assert await enhance_or_keep(MockEnhancer(), "a fox") == (
        "a fox, highly detailed, soft natural lighting, sharp focus"
    )


def test_enhancer_choice() -> None:
    assert isinstance(build_enhancer("mock", model="m", ollama_url="", env={}), MockEnhancer)
    assert build_enhancer("openai", model="m", ollama_url="", env={}) is None  # no key
    assert isinstance(
        build_enhancer("openai", model="m", ollama_url="", env={"OPENAI_API_KEY": "k"}),
        OpenAIChatEnhancer,
    )
    assert build_enhancer("none", model="m", ollama_url="", env={}) is None


class Store:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    async def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        return self.objects[key]


async def test_input_images_are_this_apps_uploads_or_imported_urls() -> None:
    app = uuid4()
    store = Store({f"inputs/{app}/a.png": PNG, f"inputs/{app}/imported.png": PNG})
    imports: list[str] = []

    def storage(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/internal/apps/{app}/imports"
        imports.append(json.loads(request.content)["url"])
        return httpx.Response(201, json={"key": f"inputs/{app}/imported.png"})

    fetcher = InputFetcher(store, "http://storage", transport=httpx.MockTransport(storage))
    images = await fetcher.fetch(app, [f"inputs/{app}/a.png", "https://example.com/cat.png"])
    assert [i.key for i in images] == [f"inputs/{app}/a.png", f"inputs/{app}/imported.png"]
    assert images[0].content_type == "image/png" and images[0].data == PNG
    assert imports == ["https://example.com/cat.png"]

    for bad in [f"inputs/{uuid4()}/a.png", f"inputs/{app}/missing.png"]:
        with pytest.raises(TerminalProviderError) as info:
            await fetcher.fetch(app, [bad])
        assert info.value.code is ErrorCode.INVALID_INPUT
