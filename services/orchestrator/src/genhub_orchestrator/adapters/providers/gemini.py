"""Google Gemini image generation: `POST /v1beta/models/{model}:generateContent`.

Text (and input images as `inline_data`) go in; image parts come back as base64
`inlineData`. One image per call, so several outputs are several concurrent calls. A blocked
prompt (`promptFeedback.blockReason`) or a safety finish reason is `content_rejected`.
"""

import asyncio
import base64
from typing import Any

from genhub_contracts import ErrorCode

from genhub_orchestrator.adapters.providers.http import (
    HttpProvider,
    decode_b64,
    json_object,
    malformed,
    nearest_aspect_ratio,
)
from genhub_orchestrator.domain.providers import (
    GeneratedImage,
    GenerationRequest,
    RetryableProviderError,
    TaskCallback,
    TerminalProviderError,
)

ASPECT_RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
BLOCKED_FINISH = {"SAFETY", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "BLOCKLIST", "SPII"}


class GeminiProvider(HttpProvider):
    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]:
        calls = [self._call(request) for _ in range(request.num_outputs)]
        return list(await asyncio.gather(*calls))

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": request.effective_prompt}]
        parts += [
            {
                "inline_data": {
                    "mime_type": image.content_type,
                    "data": base64.b64encode(image.data).decode(),
                }
            }
            for image in request.images
        ]
        config: dict[str, Any] = {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {
                "aspectRatio": nearest_aspect_ratio(request.width, request.height, ASPECT_RATIOS)
            },
        }
        if request.input.seed is not None:
            config["seed"] = request.input.seed
        return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}

    async def _call(self, request: GenerationRequest) -> GeneratedImage:
        response = await self.request(
            "POST",
            f"/v1beta/models/{request.provider_model_id}:generateContent",
            json=self._body(request),
            headers={"x-goog-api-key": self.config.api_key},
        )
        self.raise_for_status(response)
        body = json_object(response, self.name)
        feedback = body.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            raise TerminalProviderError(
                ErrorCode.CONTENT_REJECTED,
                f"{self.name} blocked the prompt: {feedback['blockReason']}",
            )
        candidates = body.get("candidates")
        if (
            not isinstance(candidates, list)
            or not candidates
            or not isinstance(candidates[0], dict)
        ):
            raise malformed(self.name, "no candidates")
        candidate = candidates[0]
        if candidate.get("finishReason") in BLOCKED_FINISH:
            raise TerminalProviderError(
                ErrorCode.CONTENT_REJECTED, f"{self.name} stopped: {candidate['finishReason']}"
            )
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            raise malformed(self.name, "candidate without parts")
        for part in parts:
            inline = (
                part.get("inlineData") or part.get("inline_data")
                if isinstance(part, dict)
                else None
            )
            if isinstance(inline, dict):
                mime = inline.get("mimeType") or inline.get("mime_type") or "image/png"
                return GeneratedImage(decode_b64(inline.get("data"), self.name), str(mime))
        raise RetryableProviderError(ErrorCode.PROVIDER_ERROR, f"{self.name} returned no image")
