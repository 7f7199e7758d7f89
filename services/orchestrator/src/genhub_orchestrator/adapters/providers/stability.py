"""Stability AI Stable Image: `POST /v2beta/stable-image/generate/{core|ultra|sd3}`.

multipart/form-data in, `Accept: application/json` out (`{"image": base64, "finish_reason"}`).
One image per call: several outputs are several concurrent calls (seeds offset by the index
so they differ). `finish_reason: CONTENT_FILTERED` or a 403 `content_moderation` is
`content_rejected`. Image-to-image sends the first input image with `strength`.
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
    nearest_aspect_ratio,
    sniff_content_type,
)
from genhub_orchestrator.domain.providers import (
    GeneratedImage,
    GenerationRequest,
    TaskCallback,
    TerminalProviderError,
)

ASPECT_RATIOS = ["16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"]


class StabilityProvider(HttpProvider):
    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]:
        return list(
            await asyncio.gather(*(self._call(request, i) for i in range(request.num_outputs)))
        )

    def _form(self, request: GenerationRequest, index: int) -> dict[str, str]:
        form: dict[str, Any] = {
            "prompt": request.effective_prompt,
            "output_format": "png",
        }
        if request.images:
            form["mode"] = "image-to-image"
            form["strength"] = request.route_settings.get("strength", 0.7)
        else:
            form["aspect_ratio"] = nearest_aspect_ratio(
                request.width, request.height, ASPECT_RATIOS
            )
        if request.input.seed is not None:
            form["seed"] = (request.input.seed + index) % (2**32)
        if request.input.negative_prompt:
            form["negative_prompt"] = request.input.negative_prompt
        if "model" in request.route_settings:
            form["model"] = request.route_settings["model"]
        return {k: str(v) for k, v in form.items()}

    async def _call(self, request: GenerationRequest, index: int) -> GeneratedImage:
        files: dict[str, Any] = {"none": ("", b"")}  # forces multipart even without an image
        if request.images:
            image = request.images[0]
            files = {"image": ("input", image.data, image.content_type)}
        response = await self.request(
            "POST",
            f"/v2beta/stable-image/generate/{request.provider_model_id}",
            data=self._form(request, index),
            files=files,
            headers={
                "Authorization": f"Bearer {self.config.api_key}",
                "Accept": "application/json",
            },
        )
        self._raise_for_moderation(response)
        self.raise_for_status(response)
        body = json_object(response, self.name)
        if body.get("finish_reason") == "CONTENT_FILTERED":
            raise TerminalProviderError(
                ErrorCode.CONTENT_REJECTED, f"{self.name} filtered the output"
            )
        raw = decode_b64(body.get("image"), self.name)
        return GeneratedImage(raw, sniff_content_type(raw))

    def _raise_for_moderation(self, response: httpx.Response) -> None:
        if response.status_code == 403 and error_json(response).get("name") == "content_moderation":
            raise TerminalProviderError(
                ErrorCode.CONTENT_REJECTED, f"{self.name} flagged the request (content_moderation)"
            )
