"""`POST /v1/generate` served outside the middleware stack, for the hot path.

FastAPI spends more CPU per request on routing (every route's pattern until one matches),
solving the route's dependencies and parameters, and its per-route wrappers than the
gateway spends on the request itself; and each middleware layer (Starlette's server error
middleware, FastAPI's exception telemetry and body limit, the gateway's request id and body
limit, the platform's trace context and metrics) is a coroutine resumed on every suspension
of the request and wraps `send` once more. `GenerateFastPath` is installed *outermost* in the
app's middleware stack (`install`) and, for the ordinary request — a JSON body within the
limit that validates, a well-formed Idempotency-Key — does what those layers do itself, once:

- the request id (`X-Request-ID`: the caller's if sane, else a new one) on the answer, and the
  headers dependencies left for it (rate-limit state), as `GatewayMiddleware` adds them;
- the request's trace context when no span is current (`RequestTraceContext`, as the
  platform's `RequestTraceContextMiddleware`); the route's name for FastAPI's request span;
- the request's latency in `genhub_http_request_duration_seconds` (labelled with the route,
  as the platform's `MetricsMiddleware` does);
- errors: an exception the app has a handler for is answered by it (so the answers are the
  route's answers); any other is answered by the app's 500 handler and raised again, as
  Starlette's server error middleware does (after FastAPI's exception telemetry saw it).

It calls the same functions the route does: `authenticate_app` (the key) and then
`generate_unmetered`, which counts the call against the rate limits in the same
group-committed statement that writes the job when the request needs no other check with a
side effect, and otherwise counts it first and calls the `generate` endpoint.

Anything else (another path, a body that is not JSON, does not validate or is larger than
the limit, a non-JSON content type, an Idempotency-Key FastAPI would refuse) goes to the
whole middleware stack untouched, with the body replayed: nothing has happened yet, so the
stack answers exactly as it would have (413 for the body over the limit included).
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry._api import _route_selected
from fastapi.telemetry._asgi import _exception as _record_exception
from genhub_platform.http import HTTP_LATENCY
from genhub_platform.runtime import RequestTraceContext
from opentelemetry import context as otel_context
from opentelemetry import trace
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genhub_gateway.handlers import http
from genhub_gateway.handlers.deps import authenticate_app
from genhub_gateway.handlers.middleware import REQUEST_ID_HEADER, sane_request_id
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


_WANTED = {
    b"content-type": "content_type",
    b"content-length": "content_length",
    b"x-request-id": "request_id",
    b"x-api-key": "api_key",
    b"x-user-id": "user_id",
    b"idempotency-key": "idempotency_key",
}


def _headers(scope: Scope) -> tuple[dict[str, str], list[str]]:
    """The headers the fast path reads (the first of each, as `Headers.get` gives) and every
    `Prefer` header, from one pass over the raw headers."""
    found: dict[str, str] = {}
    prefer: list[str] = []
    for name, value in scope["headers"]:
        if name == b"prefer":
            prefer.append(value.decode("latin-1"))
            continue
        field = _WANTED.get(name)
        if field is not None and field not in found:
            found[field] = value.decode("latin-1")
    return found, prefer


class GenerateFastPath:
    def __init__(
        self,
        app: ASGIApp,
        *,
        route: APIRoute,
        max_body: Callable[[], int],
        service: str,
        trace_contexts: RequestTraceContext | None,
    ) -> None:
        self.app = app  # the whole middleware stack
        self.route = route
        self.max_body = max_body  # the largest body served here (read per request)
        self.service = service
        self.trace_contexts = trace_contexts  # None: FastAPI's request spans are on
        self._latency: dict[int, Any] = {}  # status -> its histogram child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers, prefer = _headers(scope)
        limit = self.max_body()
        declared = headers.get("content_length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self.app(scope, receive, send)  # the stack answers (413, say)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client went away: the stack decides
                await self.app(scope, _replaying(messages, receive), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # over the limit while streaming: the stack answers 413
                await self.app(scope, _replaying(messages, receive), send)
                return
            if not message.get("more_body", False):
                break
        body = self._parse(headers, b"".join(chunks))
        if body is None:
            await self.app(scope, _replaying(messages, receive), send)
            return
        token = None
        if self.trace_contexts is not None and not (
            trace.get_current_span().get_span_context().is_valid
        ):
            token = otel_context.attach(self.trace_contexts.context_for(scope["headers"]))
        status = 500
        try:
            status = await self._serve(scope, receive, send, headers, prefer, body)
        finally:
            if token is not None:
                otel_context.detach(token)
            self._observe(status, time.perf_counter() - started)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        prefer: list[str],
        body: GenerateRequest,
    ) -> int:
        """Answer the parsed request; its status."""
        request_id = sane_request_id(headers.get("request_id", ""))
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        # What routing would have done: the metrics label by scope["route"], and FastAPI's
        # request span (recorded when an exporter is configured) is named after the route.
        scope["route"] = self.route
        scope["endpoint"] = self.route.endpoint
        _route_selected(scope=scope, path=self.route.path)
        request = Request(scope, receive)
        try:
            try:
                caller = await authenticate_app(request, headers.get("api_key") or None)
                response = await http.generate_unmetered(
                    body,
                    caller,
                    request,
                    x_user_id=headers.get("user_id"),
                    idempotency_key=headers.get("idempotency_key"),
                    prefer=prefer or None,
                )
            except Exception as exc:
                handler = self._handler_for(scope, exc)
                if handler is None:
                    raise
                response = await handler(request, exc)
        except Exception as exc:
            # As FastAPI's exception telemetry and Starlette's server error middleware: the
            # app's 500 answer (without the request's headers, as there), then raise.
            _record_exception(scope=scope, exc=exc)
            handler = self._server_error_handler(scope)
            if handler is not None:
                await (await handler(request, exc))(scope, receive, send)
            raise
        extra = {REQUEST_ID_HEADER: request_id, **state.get("response_headers", {})}
        present = {name for name, _ in response.raw_headers}
        for name, value in extra.items():
            raw_name = name.lower().encode()
            if raw_name not in present:
                response.raw_headers.append((raw_name, value.encode("latin-1")))
        await response(scope, receive, send)
        return response.status_code

    def _observe(self, status: int, elapsed: float) -> None:
        child = self._latency.get(status)
        if child is None:
            child = self._latency[status] = HTTP_LATENCY.labels(
                self.service, "POST", self.route.path, str(status)
            )
        child.observe(elapsed)

    @staticmethod
    def _parse(headers: dict[str, str], raw: bytes) -> GenerateRequest | None:
        """The body, when the route would accept it as is; None sends it to the route."""
        if not _is_json(headers.get("content_type")):
            return None
        key = headers.get("idempotency_key")
        if key is not None and not 1 <= len(key) <= 255:
            return None
        try:
            # As FastAPI does: decode, then validate the Python value (not JSON mode). orjson
            # is strict JSON: what it refuses (NaN, say) goes to the route, which decides.
            return GenerateRequest.model_validate(orjson.loads(raw))
        except (ValueError, ValidationError):  # orjson's JSONDecodeError is a ValueError
            return None

    @staticmethod
    def _server_error_handler(scope: Scope) -> ExceptionHandler | None:
        handlers: dict[Any, ExceptionHandler] = scope["app"].exception_handlers
        return handlers.get(500) or handlers.get(Exception)

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


def install(app: FastAPI, *, route: APIRoute, max_body: Callable[[], int]) -> None:
    """Serve `POST /v1/generate` (`route`) ahead of the app's middleware stack (built when
    the app first serves a request, with every middleware added by then)."""
    runtime = app.state.runtime
    contexts = None if app.state.request_spans else RequestTraceContext()
    build_stack = app.build_middleware_stack

    def build_with_fast_path() -> ASGIApp:
        return GenerateFastPath(
            build_stack(),
            route=route,
            max_body=max_body,
            service=runtime.settings.service_name,
            trace_contexts=contexts,
        )

    app.build_middleware_stack = build_with_fast_path  # type: ignore[method-assign]
