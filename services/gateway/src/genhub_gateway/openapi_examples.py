"""Examples for every operation of the OpenAPI 3.1 document at /docs, kept in one place.

`install(app)` wraps `app.openapi` so the generated document carries, for each operation, an
example request body (when it has one) and an example of its success answer; every error
answer is documented as RFC 9457 problem JSON with an example.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

JOB_ID = "0b9f4c3e-3f7e-4a55-9d44-5a4f3b1c2d10"
APP_ID = "5d1c1f6e-2b7a-4c4e-9d55-0c2f0e6f9a11"
KEY_ID = "8a0b9c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d"
AT = "2026-11-21T10:00:00Z"

_APP = {
    "id": APP_ID,
    "name": "Acme Photos",
    "slug": "acme-photos",
    "plan": "pro",
    "enabled": True,
    "webhook_url": "https://hooks.acme.example/genhub",
    "welcome_grant": 50,
    "rate_limit_per_minute": 6000,
    "user_rate_limit_per_minute": 60,
    "options": {
        "cache": True,
        "charge_cache_hits": False,
        "enhance_prompt": False,
        "watermark": None,
        "output_retention_days": 90,
    },
    "created_at": AT,
    "updated_at": AT,
}
_USER_JOBS = {"total": 7, "by_status": {"succeeded": 6, "failed": 1}, "tokens_charged": 60}
_KEY = {"id": KEY_ID, "app_id": APP_ID, "prefix": "gh_live_ab12cd34", "created_at": AT}
_JOB = {
    "job_id": JOB_ID,
    "status": "succeeded",
    "model": "mock",
    "user_id": "user-42",
    "created_at": AT,
    "updated_at": AT,
    "outputs": [
        {
            "index": 0,
            "url": "https://objects.example/outputs/...png?X-Amz-Signature=...",
            "content_type": "image/png",
            "width": 1024,
            "height": 1024,
            "bytes": 734002,
        }
    ],
    "error": None,
    "tokens": {"reserved": 10, "charged": 10, "refunded": 0},
    "provider": "mock",
    "attempts": 1,
    "metadata": {"order": "A-1"},
}
_BALANCE = {"user_id": "user-42", "balance": 90, "reserved": 10, "available": 80}
_UPLOAD = {
    "key": f"inputs/{APP_ID}/2c7e0a4e-1f6b-4bb1-a0a4-6f3c1c9d1e0b.png",
    "content_type": "image/png",
    "width": 512,
    "height": 512,
    "bytes": 48213,
    "sha256": "9f2c...e1",
    "expires_at": "2026-11-28T10:00:00Z",
}
_ENDPOINT = {
    "id": "3f1e2d3c-4b5a-4968-8776-655443322110",
    "url": "https://hooks.acme.example/genhub",
    "description": "production",
    "event_types": ["job.succeeded", "job.failed"],
    "enabled": True,
    "disabled_reason": None,
    "created_at": AT,
}
_DELIVERY = {
    "id": "7c6b5a49-3827-4615-9403-f2e1d0c9b8a7",
    "job_id": JOB_ID,
    "event_type": "job.succeeded",
    "status": "delivered",
    "attempts": [{"status_code": 200, "latency_ms": 41, "at": AT}],
}
_AUDIT = {
    "id": 412,
    "at": AT,
    "actor": "admin:bootstrap",
    "action": "app.update",
    "target_type": "app",
    "target_id": APP_ID,
    "app_id": APP_ID,
    "before": {"user_rate_limit_per_minute": 60},
    "after": {"user_rate_limit_per_minute": 120},
    "request_id": "c0ffee",
}
_TOKEN = {
    "id": "11111111-2222-4333-8444-555555555555",
    "name": "ops-alice",
    "prefix": "gh_admin_Xy12ab34",
    "created_by": "admin:bootstrap",
    "created_at": AT,
    "revoked_at": None,
}

# (method, path) -> (request example or None, success status, response example or None)
_USER = {**_BALANCE, "free_quota_left": 2, "free_quota_per_day": 3, "jobs": _USER_JOBS}

EXAMPLES: dict[tuple[str, str], tuple[Any, str, Any]] = {
    ("post", "/v1/generate"): (
        {
            "model": "mock",
            "input": {
                "prompt": "a lighthouse at dusk, oil painting",
                "negative_prompt": "text, watermark",
                "aspect_ratio": "16:9",
                "num_outputs": 2,
                "seed": 42,
                "output_format": "png",
                "quality": "hd",
            },
            "priority": 5,
            "webhook_url": "https://hooks.acme.example/genhub",
            "metadata": {"order": "A-1"},
            "cache": True,
            "enhance_prompt": False,
        },
        "202",
        {"job_id": JOB_ID, "status": "queued"},
    ),
    ("get", "/v1/jobs"): (None, "200", {"jobs": [_JOB], "next_cursor": "MjAyNi0xMS0yMV..."}),
    ("get", "/v1/jobs/{job_id}"): (None, "200", _JOB),
    ("post", "/v1/jobs/{job_id}/cancel"): (None, "202", {**_JOB, "status": "running"}),
    ("get", "/v1/models"): (
        None,
        "200",
        {
            "models": [
                {
                    "name": "mock",
                    "display_name": "Mock",
                    "enabled": True,
                    "max_outputs": 4,
                    "capabilities": ["text-to-image", "image-to-image"],
                    "max_input_images": 4,
                    "aspect_ratios": ["1:1", "16:9"],
                    "tokens_per_output": 10,
                }
            ]
        },
    ),
    ("get", "/v1/users/{external_id}"): (None, "200", _USER),
    ("put", "/v1/users/{external_id}"): (None, "200", _USER),
    ("post", "/v1/users/{external_id}/tokens"): (
        {"amount": 100, "reason": "in-app purchase #8812"},
        "201",
        {**_BALANCE, "balance": 190, "available": 180, "transfer_id": "t-8c1d"},
    ),
    ("post", "/v1/users/tokens/batch"): (
        {
            "grants": [
                {"user_id": "user-42", "amount": 100, "reason": "promo", "expires_at": None},
                {"user_id": "user-43", "amount": 50, "reason": "promo", "expires_at": None},
            ]
        },
        "201",
        {
            "results": [
                {"user_id": "user-42", "transfer_id": "t-1", "balance": 190, "available": 180},
                {"user_id": "user-43", "transfer_id": "t-2", "balance": 50, "available": 50},
            ]
        },
    ),
    ("get", "/v1/users/{external_id}/ledger"): (
        None,
        "200",
        {
            "entries": [
                {
                    "transfer_id": "t-9",
                    "kind": "charge",
                    "direction": "debit",
                    "amount": 10,
                    "balance_after": 90,
                    "job_id": JOB_ID,
                    "reason": None,
                    "created_at": AT,
                }
            ],
            "next_cursor": None,
        },
    ),
    ("post", "/v1/uploads"): ("<binary PNG, JPEG or WEBP>", "201", _UPLOAD),
    ("get", "/v1/uploads/{key}"): (None, "200", _UPLOAD),
    ("get", "/v1/files/{job_id}/{index}"): (None, "302", None),
    ("get", "/v1/webhooks/endpoints"): (None, "200", {"endpoints": [_ENDPOINT]}),
    ("post", "/v1/webhooks/endpoints"): (
        {
            "url": "https://hooks.acme.example/genhub",
            "description": "production",
            "event_types": ["job.succeeded", "job.failed"],
        },
        "201",
        {"endpoint": _ENDPOINT, "secret": "whsec_example-only-shown-once"},
    ),
    ("get", "/v1/webhooks/endpoints/{endpoint_id}"): (None, "200", {"endpoint": _ENDPOINT}),
    ("patch", "/v1/webhooks/endpoints/{endpoint_id}"): (
        {"enabled": False},
        "200",
        {"endpoint": {**_ENDPOINT, "enabled": False}},
    ),
    ("delete", "/v1/webhooks/endpoints/{endpoint_id}"): (None, "200", {"deleted": True}),
    ("post", "/v1/webhooks/endpoints/{endpoint_id}/rotate-secret"): (
        None,
        "200",
        {"secret": "whsec_example-new-secret-shown-once"},
    ),
    ("get", "/v1/webhooks/deliveries"): (
        None,
        "200",
        {"deliveries": [_DELIVERY], "next_cursor": None},
    ),
    ("get", "/v1/webhooks/deliveries/{delivery_id}"): (None, "200", _DELIVERY),
    ("post", "/v1/webhooks/deliveries/replay"): (
        {"since": AT, "status": "failed"},
        "202",
        {"replayed": 3},
    ),
    ("post", "/v1/webhooks/deliveries/{delivery_id}/replay"): (
        None,
        "202",
        {"delivery_id": _DELIVERY["id"]},
    ),
    ("post", "/admin/apps"): (
        {
            "name": "Acme Photos",
            "slug": "acme-photos",
            "plan": "pro",
            "webhook_url": "https://hooks.acme.example/genhub",
            "welcome_grant": 50,
            "user_rate_limit_per_minute": 60,
            "options": {"enhance_prompt": False, "output_retention_days": 90},
        },
        "201",
        {
            "app": _APP,
            "api_key": "gh_live_ab12cd34...",
            "key": _KEY,
            "webhook_secret": "whsec_...",
        },
    ),
    ("get", "/admin/apps"): (None, "200", {"apps": [{**_APP, "keys": [_KEY]}]}),
    ("get", "/admin/apps/{app_id}"): (None, "200", {**_APP, "keys": [_KEY]}),
    ("patch", "/admin/apps/{app_id}"): (
        {"user_rate_limit_per_minute": 120, "options": {"watermark": {"text": "acme"}}},
        "200",
        _APP,
    ),
    ("post", "/admin/apps/{app_id}/keys"): (None, "201", {"api_key": "gh_live_...", "key": _KEY}),
    ("delete", "/admin/apps/{app_id}/keys/{key_id}"): (None, "200", {**_KEY, "revoked_at": AT}),
    ("get", "/admin/tokens"): (None, "200", {"tokens": [_TOKEN]}),
    ("post", "/admin/tokens"): (
        {"name": "ops-alice"},
        "201",
        {"token": "gh_admin_...", "admin_token": _TOKEN},
    ),
    ("delete", "/admin/tokens/{token_id}"): (None, "200", {**_TOKEN, "revoked_at": AT}),
    ("get", "/admin/audit"): (None, "200", {"entries": [_AUDIT], "next_cursor": "YXVkaXQ6NDEy"}),
    ("get", "/admin/apps/{app_id}/billing"): (
        None,
        "200",
        {
            "plan": "pro",
            "monthly_allocations": True,
            "free_daily_quota": 3,
            "low_balance_threshold": 20,
        },
    ),
    ("put", "/admin/apps/{app_id}/billing"): (
        {"monthly_allocations": False, "free_daily_quota": 3, "monthly_budget_usd": 500},
        "200",
        {
            "plan": "pro",
            "monthly_allocations": False,
            "free_daily_quota": 3,
            "monthly_budget_usd": 500,
        },
    ),
    ("get", "/admin/pricing"): (
        None,
        "200",
        {"rules": [{"model": "mock", "app_id": None, "base_tokens": 10, "hd_multiplier": 1.5}]},
    ),
    ("put", "/admin/pricing/{model}"): (
        {"base_tokens": 12},
        "200",
        {"model": "mock", "base_tokens": 12},
    ),
    ("put", "/admin/apps/{app_id}/pricing/{model}"): (
        {"base_tokens": 8},
        "200",
        {"model": "mock", "app_id": APP_ID, "base_tokens": 8},
    ),
    ("delete", "/admin/apps/{app_id}/pricing/{model}"): (None, "200", {"deleted": True}),
    ("get", "/admin/plans"): (None, "200", {"plans": [{"plan": "pro", "monthly_tokens": 2000}]}),
    ("put", "/admin/plans/{plan}"): (
        {"monthly_tokens": 2500},
        "200",
        {"plan": "pro", "monthly_tokens": 2500},
    ),
    ("get", "/admin/catalog/{kind}"): (
        None,
        "200",
        {"models": [{"name": "mock", "enabled": True, "max_outputs": 4}]},
    ),
    ("post", "/admin/catalog/{kind}"): (
        {"name": "sdxl-lite", "display_name": "SDXL lite", "capabilities": ["text-to-image"]},
        "201",
        {"name": "sdxl-lite", "enabled": True},
    ),
    ("patch", "/admin/catalog/{kind}/{name}"): (
        {"enabled": False},
        "200",
        {"name": "mock", "enabled": False},
    ),
    ("get", "/admin/stats"): (
        None,
        "200",
        {"providers": [{"provider": "mock", "model": "mock", "success_rate": 0.99}]},
    ),
    ("get", "/admin/providers/health"): (
        None,
        "200",
        {"providers": [{"name": "mock", "health": "healthy", "circuit": "closed"}]},
    ),
    ("get", "/admin/plan-limits"): (
        None,
        "200",
        {"free": 1, "basic": 1, "pro": 3, "enterprise": 10},
    ),
    ("put", "/admin/plan-limits"): (
        {"pro": 4},
        "200",
        {"free": 1, "basic": 1, "pro": 4, "enterprise": 10},
    ),
}

_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details; `error.code` is the stable machine-readable code",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
            "required": ["code", "message"],
        },
    },
    "required": ["status", "code", "error"],
}


def problem_example(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {
        "type": f"https://docs.genhub.dev/errors/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": message,
        "code": code,
        "error": error,
    }


_ERROR_EXAMPLES = {
    "400": problem_example(400, "invalid_user_id", "X-User-ID must be 1-128 characters."),
    "401": problem_example(401, "invalid_api_key", "The API key is not valid."),
    "402": {
        **problem_example(402, "insufficient_tokens", "Not enough tokens for this job."),
        "balance": 5,
        "required": 10,
        "job_id": JOB_ID,
    },
    "404": problem_example(404, "job_not_found", "No such job for this app."),
    "409": problem_example(409, "idempotency_key_in_use", "A request with this key is running."),
    "410": problem_example(410, "expired", "This output is no longer available."),
    "413": problem_example(413, "payload_too_large", "The request body is too large."),
    "422": problem_example(
        422,
        "validation_error",
        "The request is not valid.",
        [
            {
                "field": "body.input.num_outputs",
                "message": "Input should be less than or equal to 4",
                "type": "less_than_equal",
            }
        ],
    ),
    "429": problem_example(429, "rate_limited", "Rate limit exceeded (user); retry after 12 s."),
    "503": problem_example(503, "upstream_unavailable", "The billing service is unavailable."),
}


def _add_examples(spec: dict[str, Any]) -> dict[str, Any]:
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            known = EXAMPLES.get((method, path))
            if known is not None:
                request, success, answer = known
                body = operation.get("requestBody", {}).get("content", {})
                for media, content in body.items():
                    if request is not None and (media == "application/json" or "json" in media):
                        content["example"] = request
                if success not in operation.get("responses", {}):
                    operation.setdefault("responses", {})[success] = {"description": "success"}
                if answer is not None:
                    content = operation["responses"][success].setdefault("content", {})
                    content.setdefault("application/json", {})["example"] = answer
            for status, response in operation.get("responses", {}).items():
                if status in _ERROR_EXAMPLES or (status.isdigit() and int(status) >= 400):
                    example = _ERROR_EXAMPLES.get(status) or problem_example(
                        int(status), "error", response.get("description", "error")
                    )
                    response["content"] = {
                        "application/problem+json": {"schema": _PROBLEM_SCHEMA, "example": example}
                    }
            for status in ("401", "429"):
                if not path.startswith("/v1/") and not path.startswith("/admin/"):
                    continue
                operation.setdefault("responses", {}).setdefault(
                    status,
                    {
                        "description": "authentication failed"
                        if status == "401"
                        else "rate limited (`Retry-After`, `RateLimit`, `RateLimit-Policy`)",
                        "content": {
                            "application/problem+json": {
                                "schema": _PROBLEM_SCHEMA,
                                "example": _ERROR_EXAMPLES[status],
                            }
                        },
                    },
                )
    return spec


def install(app: FastAPI) -> None:
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _add_examples(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
