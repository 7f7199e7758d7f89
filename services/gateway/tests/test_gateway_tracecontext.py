"""Without an exporter FastAPI's request spans are off and the platform gives each request its
trace context (genhub_platform.runtime.create_service_app; the rules are tested in
libs/platform/tests/test_platform_app_telemetry.py): the caller's trace continues into the
outbox row's `traceparent`, and a request without one starts a new trace — on the generate
fast path as on the routes."""

import json

import httpx
import pytest
from fastapi import FastAPI

from .test_gateway_db import create_tenant, rows, submit

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def test_fastapis_request_spans_are_off_without_an_exporter(app: FastAPI) -> None:
    assert app.state.request_spans is False


@pytest.mark.usefixtures("clean_db")
async def test_the_callers_trace_reaches_the_outbox_row(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    key = (await create_tenant(http))["api_key"]
    await submit(http, key)  # the user's first use (a slower path)
    await submit(http, key, traceparent=TRACEPARENT)
    await submit(http, key)
    stored = await rows(app, "SELECT headers::text FROM outbox ORDER BY id")
    parents = [json.loads(h)["traceparent"].split("-") for (h,) in stored]
    assert all(len(p) == 4 and p[0] == "00" for p in parents)
    assert parents[1][1] == CALLER_TRACE and parents[1][2] != "00f067aa0ba902b7"
    assert len({p[1] for p in parents}) == 3  # the others started traces of their own
