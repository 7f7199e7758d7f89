"""fal.ai queue: submit, poll the status, fetch the result, cancel.

`POST {queue}/{model_id}` submits (the model id may carry a sub-path, e.g. `fal-ai/flux/dev`);
status, result and cancel live under the app id (`owner/name`, without the sub-path):
`GET {queue}/{app}/requests/{id}/status`, `GET {queue}/{app}/requests/{id}`,
`PUT {queue}/{app}/requests/{id}/cancel`. The request id is the provider task id. Images the
safety checker flagged (`has_nsfw_concepts`) are dropped; all flagged → `content_rejected`.
"""

import asyncio
from typing import Any

from genhub_contracts import ErrorCode

from genhub_orchestrator.adapters.providers.http import (
    HttpProvider,
    cancel_quietly,
    data_uri,
    json_object,
    malformed,
)
from genhub_orchestrator.domain.providers import (
    GeneratedImage,
    GenerationRequest,
    RetryableProviderError,
    TaskCallback,
    TerminalProviderError,
)


def app_id_of(model_id: str) -> str:
    return "/".join(model_id.strip("/").split("/")[:2])


class FalProvider(HttpProvider):
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.config.api_key}"}

    def _input(self, request: GenerationRequest) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prompt": request.effective_prompt,
            "image_size": {"width": request.width, "height": request.height},
            "num_images": request.num_outputs,
            "output_format": "png",
            "enable_safety_checker": True,
        }
        if request.input.seed is not None:
            data["seed"] = request.input.seed
        if request.input.negative_prompt:
            data["negative_prompt"] = request.input.negative_prompt
        if request.images:
            data["image_url"] = data_uri(request.images[0])
            if len(request.images) > 1:
                data["image_urls"] = [data_uri(image) for image in request.images]
        data.update(request.route_settings.get("input", {}))
        return data

    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]:
        model = request.provider_model_id.strip("/")
        response = await self.request(
            "POST", f"/{model}", json=self._input(request), headers=self._headers()
        )
        self.raise_for_status(response)
        task_id = json_object(response, self.name).get("request_id")
        if not isinstance(task_id, str) or not task_id:
            raise malformed(self.name, "submit answer without request_id")
        if on_task:
            on_task(task_id)
        base = f"/{app_id_of(model)}/requests/{task_id}"
        try:
            await self._wait(base, task_id)
            response = await self.request("GET", base, headers=self._headers())
        except asyncio.CancelledError:
            await cancel_quietly(self.request("PUT", f"{base}/cancel", headers=self._headers()))
            raise
        self.raise_for_status(response)
        return await self._images(json_object(response, self.name), task_id)

    async def _wait(self, base: str, task_id: str) -> None:
        deadline = self.deadline()
        while True:
            response = await self.request("GET", f"{base}/status", headers=self._headers())
            self.raise_for_status(response)
            status = json_object(response, self.name).get("status")
            if status == "COMPLETED":
                return
            if status in ("FAILED", "CANCELED", "CANCELLED"):
                raise RetryableProviderError(
                    ErrorCode.PROVIDER_ERROR, f"{self.name} request {status}", task_id=task_id
                )
            if status not in ("IN_QUEUE", "IN_PROGRESS"):
                raise malformed(self.name, f"unknown queue status {status!r}")
            await self.wait_poll(deadline, task_id)

    async def _images(self, result: dict[str, Any], task_id: str) -> list[GeneratedImage]:
        items = result.get("images")
        if not isinstance(items, list) or not items:
            raise malformed(self.name, "result without images")
        flags = result.get("has_nsfw_concepts") or []
        urls = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                raise malformed(self.name, "image without url")
            if i < len(flags) and flags[i] is True:
                continue
            urls.append(item["url"])
        if not urls:
            raise TerminalProviderError(
                ErrorCode.CONTENT_REJECTED,
                f"{self.name}: the safety checker flagged every image",
                task_id=task_id,
            )
        return list(await asyncio.gather(*(self.download(u) for u in urls)))
