"""Probes and Prometheus metrics every service serves: `/healthz`, `/readyz`, `/metrics`."""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_LATENCY = Histogram(
    "genhub_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def probes_router(check_ready: Callable[[], Awaitable[dict[str, bool]]]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await check_ready()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def _route_template(scope: Scope) -> str:
    # Label by route template, not raw path, so ids do not explode the metric's cardinality.
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class MetricsMiddleware:
    """Records every HTTP request's latency by method, route template and status.

    Plain ASGI rather than `BaseHTTPMiddleware`: that one runs each request in a task group
    and streams the response through a memory channel, which costs more CPU per request
    than a small handler does. A request that fails without an answer counts as a 500
    (the server error handler outside this middleware answers 500 for it)."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        # Label children looked up once per (method, route, status) rather than per request.
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        key = (scope["method"], _route_template(scope), status)
        child = self._children.get(key)
        if child is None:
            child = HTTP_LATENCY.labels(self.service, key[0], key[1], str(status))
            self._children[key] = child
        child.observe(elapsed)


def install_metrics(app: FastAPI, service: str) -> None:
    app.add_middleware(MetricsMiddleware, service=service)
