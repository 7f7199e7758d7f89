"""Replicate predictions: create, poll until final, download the output URLs, cancel.

`provider_model_id` is either `owner/name` (an official model: `POST /v1/models/{owner}/{name}/
predictions`) or `owner/name:version` (`POST /v1/predictions` with the version). The
prediction id is the provider task id. When our task is cancelled mid-prediction, the
prediction is cancelled at Replicate too (`POST /v1/predictions/{id}/cancel`).
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

FINAL = {"succeeded", "failed", "canceled"}
NSFW_MARKERS = ("nsfw", "sensitive", "safety")


class ReplicateProvider(HttpProvider):
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"}

    def _input(self, request: GenerationRequest) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prompt": request.effective_prompt,
            "aspect_ratio": request.aspect_ratio,
            "num_outputs": request.num_outputs,
            "output_format": "png",
        }
        if request.input.seed is not None:
            data["seed"] = request.input.seed
        if request.input.negative_prompt:
            data["negative_prompt"] = request.input.negative_prompt
        if request.images:
            field = str(request.route_settings.get("image_field", "image"))
            data[field] = data_uri(request.images[0])
        data.update(request.route_settings.get("input", {}))
        return data

    async def generate(
        self, request: GenerationRequest, on_task: TaskCallback | None = None
    ) -> list[GeneratedImage]:
        model = request.provider_model_id
        body: dict[str, Any] = {"input": self._input(request)}
        if ":" in model:
            body["version"] = model.split(":", 1)[1]
            url = "/v1/predictions"
        else:
            url = f"/v1/models/{model}/predictions"
        response = await self.request("POST", url, json=body, headers=self._headers())
        self.raise_for_status(response)
        prediction = json_object(response, self.name)
        task_id = prediction.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise malformed(self.name, "prediction without an id")
        if on_task:
            on_task(task_id)
        try:
            prediction = await self._wait(task_id, prediction)
        except asyncio.CancelledError:
            await cancel_quietly(self._cancel(task_id))
            raise
        return await self._outputs(task_id, prediction)

    async def _wait(self, task_id: str, prediction: dict[str, Any]) -> dict[str, Any]:
        deadline = self.deadline()
        while prediction.get("status") not in FINAL:
            await self.wait_poll(deadline, task_id)
            response = await self.request(
                "GET", f"/v1/predictions/{task_id}", headers=self._headers()
            )
            self.raise_for_status(response)
            prediction = json_object(response, self.name)
        return prediction

    async def _cancel(self, task_id: str) -> None:
        await self.request("POST", f"/v1/predictions/{task_id}/cancel", headers=self._headers())

    async def _outputs(self, task_id: str, prediction: dict[str, Any]) -> list[GeneratedImage]:
        status = prediction.get("status")
        if status != "succeeded":
            error = str(prediction.get("error") or f"prediction {status}")
            if any(marker in error.lower() for marker in NSFW_MARKERS):
                raise TerminalProviderError(
                    ErrorCode.CONTENT_REJECTED, f"{self.name}: {error[:200]}", task_id=task_id
                )
            raise RetryableProviderError(
                ErrorCode.PROVIDER_ERROR, f"{self.name}: {error[:200]}", task_id=task_id
            )
        output = prediction.get("output")
        urls = [output] if isinstance(output, str) else output
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise malformed(self.name, "prediction output is not a list of URLs")
        return list(await asyncio.gather(*(self.download(u) for u in urls)))
