"""Plain ASGI middleware for every request: a request id, the body size limit, and headers
that dependencies leave for the response (rate-limit state).

Pure ASGI (not BaseHTTPMiddleware) so it costs next to nothing on the hot path and can refuse
an oversized body while it streams in, before any handler buffers it.
"""

import re
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException
from genhub_platform.errors import problem
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body parsing passes it
    through and the error handlers answer 413 `payload_too_large`."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def sane_request_id(incoming: str) -> str:
    """The caller's request id when it is sane, else a new one."""
    return incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def request_id_of(scope: Scope) -> str:
    state: dict[str, Any] = scope.setdefault("state", {})
    return str(state.get("request_id", ""))


def add_response_headers(scope: Scope, headers: dict[str, str]) -> None:
    """Headers the response will carry whatever the handler returns (or raises)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    state.setdefault("response_headers", {}).update(headers)


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for  # path -> the largest body accepted there

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        incoming = ""
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        request_id = sane_request_id(incoming)
        state["request_id"] = request_id
        limit = self.limit_for(scope["path"])

        if length is not None and length > limit:
            await self._too_large(scope, receive, send, limit, request_id)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False
        replaced = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started, replaced
            if replaced:  # the handler's answer to a body we cut off is not sent
                return
            if message["type"] == "http.response.start" and received > limit:
                # The body was cut off while it streamed in; whatever the layers in between
                # made of that (a 400 "error parsing the body"), the answer is 413.
                replaced = True
                started = True
                await self._too_large(scope, receive, send, limit, request_id)
                return
            if message["type"] == "http.response.start":
                started = True
                extra = {REQUEST_ID_HEADER: request_id, **state.get("response_headers", {})}
                present = {k.lower() for k, _ in message.get("headers", [])}
                raw = list(message.get("headers", []))
                for key, value in extra.items():
                    if key.lower().encode() not in present:
                        raw.append((key.lower().encode(), value.encode("latin-1")))
                message = {**message, "headers": raw}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send, limit, request_id)

    @staticmethod
    async def _too_large(
        scope: Scope, receive: Receive, send: Send, limit: int, request_id: str
    ) -> None:
        response = problem(
            413,
            "payload_too_large",
            f"The request body is larger than {limit} bytes.",
            headers={REQUEST_ID_HEADER: request_id, "Connection": "close"},
        )
        await response(scope, receive, send)
