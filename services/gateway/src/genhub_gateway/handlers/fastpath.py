"""`POST /v1/generate` without FastAPI's routing and dependency solving, for the hot path.

FastAPI spends more CPU per request on routing (every route's pattern until one matches),
solving the route's dependencies and parameters, and its per-route wrappers than the
gateway spends on the request itself. This plain ASGI layer sits innermost among the
middleware and serves the ordinary request — a JSON body that validates, a well-formed
Idempotency-Key — by calling the same functions the route does: `authenticate_app` (the
key) and then `generate_unmetered`, which counts the call against the rate limits in the same
group-committed statement that writes the job when the request needs no other check with a
side effect, and otherwise counts it first and calls the `generate` endpoint. Its errors are
answered by the app's own exception handlers, so the answers are the route's answers.

Anything else (a body that is not JSON or does not validate, a non-JSON content type, an
Idempotency-Key FastAPI would refuse) goes to the FastAPI route untouched, with the body
replayed: nothing has happened yet, so the route answers exactly as it would have.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi.routing import APIRoute
from fastapi.telemetry._api import _route_selected
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genhub_gateway.handlers import http
from genhub_gateway.handlers.deps import authenticate_app
from genhub_gateway.schemas import GenerateRequest

PATH = "/v1/generate"
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def generate_route(routes: list[Any]) -> APIRoute:
    """The `POST /v1/generate` route (requests served here are labelled with it)."""
    for route in routes:
        if isinstance(route, APIRoute) and route.path == PATH and "POST" in (route.methods or ()):
            return route
    raise LookupError(f"no POST {PATH} route")


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out the already-read messages again, then the real ones."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _is_json(content_type: str | None) -> bool:
    return (
        content_type is not None
        and content_type.split(";", 1)[0].strip().lower() == "application/json"
    )


class GenerateFastPath:
    def __init__(self, app: ASGIApp, *, route: APIRoute) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client went away: the route decides
                await self.app(scope, _replaying(messages, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = Headers(scope=scope)
        body = self._parse(headers, b"".join(chunks))
        if body is None:
            await self.app(scope, _replaying(messages, receive), send)
            return

        # What routing would have done: the metrics label by scope["route"], and FastAPI's
        # request span (recorded when an exporter is configured) is named after the route.
        scope["route"] = self.route
        scope["endpoint"] = self.route.endpoint
        _route_selected(scope=scope, path=self.route.path)
        request = Request(scope, receive)
        try:
            caller = await authenticate_app(request, headers.get("x-api-key") or None)
            response = await http.generate_unmetered(
                body,
                caller,
                request,
                x_user_id=headers.get("x-user-id"),
                idempotency_key=headers.get("idempotency-key"),
                prefer=headers.getlist("prefer") or None,
            )
        except Exception as exc:
            handler = self._handler_for(scope, exc)
            if handler is None:
                raise  # as from the route: the server error handler answers 500
            response = await handler(request, exc)
        await response(scope, receive, send)

    @staticmethod
    def _parse(headers: Headers, raw: bytes) -> GenerateRequest | None:
        """The body, when the route would accept it as is; None sends it to the route."""
        if not _is_json(headers.get("content-type")):
            return None
        key = headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 255:
            return None
        try:
            # As FastAPI does: decode, then validate the Python value (not JSON mode). orjson
            # is strict JSON: what it refuses (NaN, say) goes to the route, which decides.
            return GenerateRequest.model_validate(orjson.loads(raw))
        except (ValueError, ValidationError):  # orjson's JSONDecodeError is a ValueError
            return None

    @staticmethod
    def _handler_for(scope: Scope, exc: Exception) -> ExceptionHandler | None:
        """The app's handler for this exception, looked up as Starlette's exception
        middleware does (the catch-all `Exception` handler belongs to the server error
        middleware further out)."""
        handlers: dict[Any, ExceptionHandler] = scope["app"].exception_handlers
        for cls in type(exc).__mro__:
            if cls in (Exception, BaseException):
                return None
            if cls in handlers:
                return handlers[cls]
        return None
