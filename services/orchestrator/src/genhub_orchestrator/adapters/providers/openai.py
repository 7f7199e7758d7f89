"""OpenAI Images: `POST /v1/images/generations` (text) and `/v1/images/edits` (with images).

gpt-image models always answer base64; dall-e models are asked for `b64_json`. dall-e-3 makes
one image per call, so several outputs are several concurrent calls. Sizes are the nearest
size the model accepts. A refusal (`content_policy_violation`, `moderation_blocked`) is
`content_rejected`.
"""

import asyncio
from typing import Any

import httpx
from genhub_contracts import ErrorCode

from genhub_orchestrator.adapters.providers.http import (
    HttpProvider,
    decode_b64,
    error_json,
    json_object,
    malformed,
    sniff_content_type,
)
from genhub_orchestrator.domain.providers import (
    GeneratedImage,
    GenerationRequest,
    TaskCallback,
    TerminalProviderError,
)

MODERATION_CODES = {"content_policy_violation", "moderation_blocked", "content_filter"}
SIZES = {
    "gpt-image": [(1024, 1024), (1536, 1024), (1024, 1536)],
    "dall-e-3": [(1024, 1024), (1792, 1024), (1024, 1792)],
    "dall-e-2": [(256, 256), (512, 512), (1024, 1024)],
}


def openai_size(model: str, width: int, height: int) -> str:
    family = next((f for f in SIZES if model.startswith(f)), "gpt-image")
    target = width / height

    def score(size: tuple[int, int]) -> tuple[float, int]:
        return abs(size[0] / size[1] - target), abs(size[0] * size[1] - width * height)

    w, h = min(SIZES[family], key=score)
    return f"{w}x{h}"


class OpenAIImagesProvider(HttpProvider):
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"}

    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]:
        model = request.provider_model_id
        one_per_call = model.startswith("dall-e-3")
        calls = request.num_outputs if one_per_call else 1
        n = 1 if one_per_call else request.num_outputs
        batches = await asyncio.gather(*(self._call(request, n) for _ in range(calls)))
        return [image for batch in batches for image in batch]

    def _fields(self, request: GenerationRequest, n: int) -> dict[str, Any]:
        model = request.provider_model_id
        fields: dict[str, Any] = {
            "model": model,
            "prompt": request.effective_prompt,
            "n": n,
            "size": openai_size(model, request.width, request.height),
        }
        if model.startswith("dall-e"):
            fields["response_format"] = "b64_json"
            if model.startswith("dall-e-3"):
                fields["quality"] = "hd" if request.input.quality == "hd" else "standard"
        else:
            fields["quality"] = "high" if request.input.quality == "hd" else "medium"
        return fields

    async def _call(self, request: GenerationRequest, n: int) -> list[GeneratedImage]:
        fields = self._fields(request, n)
        if request.images:
            files = [
                ("image[]", (f"input-{i}", image.data, image.content_type))
                for i, image in enumerate(request.images)
            ]
            data = {k: str(v) for k, v in fields.items()}
            response = await self.request(
                "POST", "/v1/images/edits", data=data, files=files, headers=self._headers()
            )
        else:
            response = await self.request(
                "POST", "/v1/images/generations", json=fields, headers=self._headers()
            )
        self._raise_for_moderation(response)
        self.raise_for_status(response)
        body = json_object(response, self.name)
        items = body.get("data")
        if not isinstance(items, list) or not items:
            raise malformed(self.name, "no `data` list")
        images = []
        for item in items:
            if not isinstance(item, dict):
                raise malformed(self.name, "`data` item is not an object")
            raw = decode_b64(item.get("b64_json"), self.name)
            images.append(GeneratedImage(raw, sniff_content_type(raw)))
        return images

    def _raise_for_moderation(self, response: httpx.Response) -> None:
        if response.status_code != 400:
            return
        error = error_json(response).get("error")
        if isinstance(error, dict) and (
            error.get("code") in MODERATION_CODES or error.get("type") in MODERATION_CODES
        ):
            raise TerminalProviderError(
                ErrorCode.CONTENT_REJECTED,
                f"{self.name} refused the prompt: {str(error.get('message', ''))[:200]}",
            )
