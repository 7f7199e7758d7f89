"""A real HTTP server on loopback that records every webhook it receives."""

import asyncio
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    host: str
    port: int
    received: list[ReceivedWebhook] = field(default_factory=list)
    # Status codes to answer with, in order; 200 once they run out.
    responses: list[int] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def _handle(self, request: Request) -> Response:
        self.received.append(
            ReceivedWebhook(request.url.path, dict(request.headers), await request.body())
        )
        status = self.responses.pop(0) if self.responses else 200
        return Response(status_code=status)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server and self._task:
            self._server.should_exit = True
            await self._task

    async def wait_for(self, count: int = 1, timeout: float = 30.0) -> list[ReceivedWebhook]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"expected {count} webhooks, got {len(self.received)}")
            await asyncio.sleep(0.05)
        return self.received
