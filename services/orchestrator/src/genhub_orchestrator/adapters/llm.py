"""Prompt enhancement through a small LLM interface: OpenAI chat, an Ollama endpoint, a mock.

Off unless a job asks (`spec.wants_enhancement`). A failing enhancer never fails the job: the
original prompt is used and the failure is logged.
"""

import logging
from typing import Protocol

import httpx

log = logging.getLogger(__name__)

INSTRUCTION = (
    "Rewrite the user's image prompt to be vivid and specific (subject, setting, lighting, "
    "style, composition) in at most 80 words. Keep the user's intent. Answer with the prompt only."
)
MAX_ENHANCED_CHARS = 4000


class PromptEnhancer(Protocol):
    async def enhance(self, prompt: str) -> str: ...


class MockEnhancer:
    """Deterministic: the prompt with a fixed set of quality cues appended."""

    async def enhance(self, prompt: str) -> str:
        return f"{prompt.strip()}, highly detailed, soft natural lighting, sharp focus"


class OpenAIChatEnhancer:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._model = model
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    async def enhance(self, prompt: str) -> str:
        response = await self._client.post(
            "/v1/chat/completions",
            json={
                "model": self._model,
                "messages": [
                    {"role": "system", "content": INSTRUCTION},
                    {"role": "user", "content": prompt},
                ],
                "temperature": 0.7,
            },
        )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        return _clean(content, prompt)


class OllamaEnhancer:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._model = model
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport
        )

    async def enhance(self, prompt: str) -> str:
        response = await self._client.post(
            "/api/chat",
            json={
                "model": self._model,
                "stream": False,
                "messages": [
                    {"role": "system", "content": INSTRUCTION},
                    {"role": "user", "content": prompt},
                ],
            },
        )
        response.raise_for_status()
        return _clean(response.json()["message"]["content"], prompt)


def _clean(content: object, original: str) -> str:
    if not isinstance(content, str) or not content.strip():
        raise ValueError("the enhancer returned no text")
    return content.strip().strip('"')[:MAX_ENHANCED_CHARS] or original


async def enhance_or_keep(enhancer: PromptEnhancer | None, prompt: str) -> str | None:
    """The enhanced prompt, or None when there is no enhancer or it failed."""
    if enhancer is None:
        return None
    try:
        return await enhancer.enhance(prompt)
    except Exception as exc:  # an enhancer outage must not fail the job
        log.warning("prompt enhancement failed (%s); using the original prompt", type(exc).__name__)
        return None


def build_enhancer(
    kind: str, *, model: str, ollama_url: str, env: dict[str, str]
) -> PromptEnhancer | None:
    if kind == "mock":
        return MockEnhancer()
    if kind == "openai" and env.get("OPENAI_API_KEY"):
        return OpenAIChatEnhancer(
            base_url=env.get("OPENAI_BASE_URL", "https://api.openai.com"),
            api_key=env["OPENAI_API_KEY"],
            model=model,
        )
    if kind == "ollama":
        return OllamaEnhancer(base_url=ollama_url, model=model)
    return None
