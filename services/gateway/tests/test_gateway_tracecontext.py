"""Without an exporter FastAPI's request spans are off and the gateway's middleware gives each
request its trace context (handlers/tracecontext.py): the caller's trace continues into the
outbox row's `traceparent`, and a request without one starts a new trace."""

import json

import httpx
import pytest
from fastapi import FastAPI
from genhub_gateway.handlers.tracecontext import RequestTraceContext, spans_recorded
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from .test_gateway_db import create_tenant, rows, submit

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def test_only_the_sdk_provider_that_drops_every_span_counts_as_not_recording() -> None:
    assert not spans_recorded(TracerProvider(sampler=ALWAYS_OFF))
    assert spans_recorded(TracerProvider())
    assert spans_recorded(trace.NoOpTracerProvider())


def test_a_callers_traceparent_is_continued_with_a_new_span() -> None:
    context = RequestTraceContext().context_for([(b"traceparent", TRACEPARENT.encode())])
    span = trace.get_current_span(context).get_span_context()
    assert f"{span.trace_id:032x}" == CALLER_TRACE
    assert f"{span.span_id:016x}" != "00f067aa0ba902b7" and not span.is_remote
    assert not span.trace_flags.sampled  # nothing is recorded here
    assert not span.trace_flags.random_trace_id  # the caller did not say its id is random


def test_a_request_without_one_starts_a_new_trace() -> None:
    contexts = [RequestTraceContext().context_for([(b"x-other", b"1")]) for _ in range(2)]
    spans = [trace.get_current_span(c).get_span_context() for c in contexts]
    assert all(s.is_valid and not s.trace_flags.sampled for s in spans)
    assert all(s.trace_flags.random_trace_id for s in spans)  # as the SDK marks its own ids
    assert spans[0].trace_id != spans[1].trace_id


def test_fastapis_request_spans_are_off_without_an_exporter(app: FastAPI) -> None:
    assert app._telemetry["tracing"] is False


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
