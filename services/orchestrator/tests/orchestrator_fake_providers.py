"""Local fake servers that speak each provider's documented HTTP API (no live network).

One FastAPI app per provider, served by uvicorn on loopback. Each keeps a `script` of
behaviours consumed one per call — `ok`, `429` (with Retry-After), `500`, `slow` (sleeps past
the client timeout), `malformed` (a 200 that is not the documented body), `moderation` (the
provider's refusal), `invalid` (the provider's bad-request answer) — plus what it received,
so tests assert both what the adapter sent and what it made of the answer.
"""

import asyncio
import base64
import io
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image


def png(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    return out.getvalue()


PNG = png()
PNG_B64 = base64.b64encode(PNG).decode()


@dataclass
class FakeState:
    script: list[str] = field(default_factory=list)
    polls_before_done: int = 0  # a slow queue: IN_QUEUE / processing this many polls first
    slow_s: float = 2.0
    retry_after: str = "0"
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    base_url: str = ""

    def next(self) -> str:
        return self.script.pop(0) if self.script else "ok"


async def common(state: FakeState, behaviour: str) -> Response | None:
    """Behaviours every provider answers the same way (429, 5xx, slow, malformed)."""
    if behaviour == "429":
        return JSONResponse(
            {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
            status_code=429,
            headers={"Retry-After": state.retry_after},
        )
    if behaviour == "500":
        return JSONResponse({"error": {"message": "internal"}}, status_code=500)
    if behaviour == "503-html":
        return Response("<html>Service Unavailable</html>", status_code=503, media_type="text/html")
    if behaviour == "slow":
        await asyncio.sleep(state.slow_s)
    if behaviour == "malformed":
        return Response("{not json", status_code=200, media_type="application/json")
    return None


def parse_multipart(body: bytes, content_type: str) -> dict[str, str]:
    """Fields of a multipart/form-data body; files as `<file NB>` (enough for a fake)."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    fields: dict[str, str] = {}
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode().split("\r\n")[0]
        name = disposition.split('name="', 1)[1].split('"', 1)[0]
        fields[name] = f"<file {len(value)}B>" if "filename=" in disposition else value.decode()
    return fields


async def record(state: FakeState, request: Request) -> None:
    state.headers.append(dict(request.headers))
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        state.received.append(parse_multipart(await request.body(), ctype))
    else:
        body = await request.body()
        state.received.append(await request.json() if body else {})


def openai_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    async def images(request: Request) -> Response:
        await record(state, request)
        behaviour = state.next()
        if (answer := await common(state, behaviour)) is not None:
            return answer
        if behaviour == "moderation":
            return JSONResponse(
                {
                    "error": {
                        "message": "Your request was rejected by the safety system.",
                        "type": "image_generation_user_error",
                        "code": "moderation_blocked",
                    }
                },
                status_code=400,
            )
        if behaviour == "invalid":
            return JSONResponse(
                {
                    "error": {
                        "message": "Invalid size",
                        "type": "invalid_request_error",
                        "code": None,
                    }
                },
                status_code=400,
            )
        if behaviour == "wrong-shape":
            return JSONResponse({"created": 1, "data": [{"url": "https://x"}]})
        n = int(state.received[-1].get("n", 1))
        return JSONResponse({"created": 1, "data": [{"b64_json": PNG_B64} for _ in range(n)]})

    app.post("/v1/images/generations")(images)
    app.post("/v1/images/edits")(images)
    return app


def replicate_app(state: FakeState) -> FastAPI:
    app = FastAPI()
    predictions: dict[str, dict[str, Any]] = {}

    def view(pid: str) -> dict[str, Any]:
        p = predictions[pid]
        return {
            "id": pid,
            "status": p["status"],
            "output": p.get("output"),
            "error": p.get("error"),
            "urls": {
                "get": f"{state.base_url}/v1/predictions/{pid}",
                "cancel": f"{state.base_url}/v1/predictions/{pid}/cancel",
            },
        }

    async def create(request: Request) -> Response:
        await record(state, request)
        behaviour = state.next()
        if (answer := await common(state, behaviour)) is not None:
            return answer
        if behaviour == "invalid":
            return JSONResponse(
                {"title": "Input validation failed", "status": 422, "detail": "prompt is required"},
                status_code=422,
            )
        pid = uuid.uuid4().hex[:12]
        n = int(state.received[-1]["input"].get("num_outputs", 1))
        predictions[pid] = {"status": "starting", "behaviour": behaviour, "n": n}
        state.polls[pid] = 0
        return JSONResponse(view(pid), status_code=201)

    app.post("/v1/models/{owner}/{name}/predictions")(create)
    app.post("/v1/predictions")(create)

    @app.get("/v1/predictions/{pid}")
    async def get(pid: str) -> Response:
        p = predictions[pid]
        state.polls[pid] += 1
        if p["status"] in ("starting", "processing") and state.polls[pid] > state.polls_before_done:
            if p["behaviour"] == "moderation":
                p.update(status="failed", error="NSFW content detected. Try running it again.")
            elif p["behaviour"] == "fail":
                p.update(status="failed", error="CUDA out of memory")
            else:
                p.update(
                    status="succeeded",
                    output=[f"{state.base_url}/files/{pid}-{i}.png" for i in range(p["n"])],
                )
        elif p["status"] == "starting":
            p["status"] = "processing"
        return JSONResponse(view(pid))

    @app.post("/v1/predictions/{pid}/cancel")
    async def cancel(pid: str) -> Response:
        state.cancelled.append(pid)
        predictions[pid]["status"] = "canceled"
        return JSONResponse(view(pid))

    @app.get("/files/{name}")
    async def file(name: str) -> Response:
        return Response(PNG, media_type="image/png")

    return app


def fal_app(state: FakeState) -> FastAPI:
    app = FastAPI()
    requests: dict[str, dict[str, Any]] = {}

    @app.post("/{owner}/{name}/{sub:path}")
    @app.post("/{owner}/{name}")
    async def submit(owner: str, name: str, request: Request, sub: str = "") -> Response:
        await record(state, request)
        behaviour = state.next()
        if (answer := await common(state, behaviour)) is not None:
            return answer
        if behaviour == "invalid":
            return JSONResponse(
                {
                    "detail": [
                        {
                            "loc": ["body", "prompt"],
                            "msg": "field required",
                            "type": "value_error.missing",
                        }
                    ]
                },
                status_code=422,
            )
        rid = str(uuid.uuid4())
        requests[rid] = {"behaviour": behaviour, "n": int(state.received[-1].get("num_images", 1))}
        state.polls[rid] = 0
        base = f"{state.base_url}/{owner}/{name}/requests/{rid}"
        return JSONResponse(
            {
                "request_id": rid,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
            }
        )

    @app.get("/{owner}/{name}/requests/{rid}/status")
    async def status(owner: str, name: str, rid: str) -> Response:
        state.polls[rid] += 1
        if rid in state.cancelled:
            return JSONResponse({"status": "CANCELED"})
        done = state.polls[rid] > state.polls_before_done
        return JSONResponse(
            {"status": "COMPLETED" if done else "IN_QUEUE", "queue_position": 0 if done else 3}
        )

    @app.get("/{owner}/{name}/requests/{rid}")
    async def result(owner: str, name: str, rid: str) -> Response:
        r = requests[rid]
        nsfw = r["behaviour"] == "moderation"
        return JSONResponse(
            {
                "images": [
                    {
                        "url": f"data:image/png;base64,{PNG_B64}",
                        "width": 8,
                        "height": 8,
                        "content_type": "image/png",
                    }
                    for _ in range(r["n"])
                ],
                "has_nsfw_concepts": [nsfw] * r["n"],
                "seed": 1,
                "prompt": "x",
            }
        )

    @app.put("/{owner}/{name}/requests/{rid}/cancel")
    async def cancel(owner: str, name: str, rid: str) -> Response:
        state.cancelled.append(rid)
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    return app


def gemini_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1beta/models/{model_action}")
    async def generate(model_action: str, request: Request) -> Response:
        await record(state, request)
        behaviour = state.next()
        if behaviour == "429":
            return JSONResponse(
                {
                    "error": {
                        "code": 429,
                        "message": "Resource has been exhausted",
                        "status": "RESOURCE_EXHAUSTED",
                    }
                },
                status_code=429,
                headers={"Retry-After": state.retry_after},
            )
        if (answer := await common(state, behaviour)) is not None:
            return answer
        if behaviour == "moderation":
            return JSONResponse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
        if behaviour == "invalid":
            return JSONResponse(
                {
                    "error": {
                        "code": 400,
                        "message": "Invalid JSON payload",
                        "status": "INVALID_ARGUMENT",
                    }
                },
                status_code=400,
            )
        return JSONResponse(
            {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [
                                {"text": "Here is your image"},
                                {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
                            ],
                        },
                        "finishReason": "STOP",
                    }
                ]
            }
        )

    return app


def stability_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    @app.post("/v2beta/stable-image/generate/{model}")
    async def generate(model: str, request: Request) -> Response:
        await record(state, request)
        behaviour = state.next()
        if (answer := await common(state, behaviour)) is not None:
            return answer
        if behaviour == "moderation":
            return JSONResponse(
                {
                    "id": "x",
                    "name": "content_moderation",
                    "errors": ["Your request was flagged by our content moderation system"],
                },
                status_code=403,
            )
        if behaviour == "filtered":
            return JSONResponse({"image": PNG_B64, "finish_reason": "CONTENT_FILTERED", "seed": 1})
        if behaviour == "invalid":
            return JSONResponse(
                {"id": "x", "name": "bad_request", "errors": ["prompt: required"]}, status_code=400
            )
        return JSONResponse({"image": PNG_B64, "finish_reason": "SUCCESS", "seed": 1})

    return app


APPS = {
    "openai": openai_app,
    "replicate": replicate_app,
    "fal": fal_app,
    "gemini": gemini_app,
    "stability": stability_app,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve(kind: str) -> AsyncIterator[FakeState]:
    """Run the fake `kind` server on a loopback port for the duration of the block."""
    state = FakeState()
    port = free_port()
    state.base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(
        APPS[kind](state), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield state
    finally:
        server.should_exit = True
        await task
