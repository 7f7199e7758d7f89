"""Idempotency-Key rules: request fingerprints, what a stored key means for a new request,
and the `Prefer: wait=N` header. Plain functions, no I/O."""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from genhub_gateway.domain import jsontext

IN_PROGRESS = "in_progress"
COMPLETED = "completed"

MAX_WAIT_S = 60.0


def fingerprint(scope: str, user_id: str, body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of (endpoint, end user, request body).

    Canonical: sorted keys, no insignificant whitespace, so key order and spacing in the
    client's JSON do not matter; defaults are filled in by the caller (the parsed model), so an
    omitted field and the same field sent with its default value are the same request.
    """
    canonical = jsontext.canonical({"scope": scope, "user_id": user_id, "body": body})
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class StoredKey:
    """What the database holds for one (app, key)."""

    request_hash: str
    state: str
    created_at: datetime
    locked_until: datetime


class Decision(StrEnum):
    PROCEED = "proceed"  # nobody holds the key (or it lapsed): this request runs
    REPLAY = "replay"  # the first request finished: answer with its response
    MISMATCH = "mismatch"  # the key was used for a different request
    IN_FLIGHT = "in_flight"  # the first request is still running


def is_expired(created_at: datetime, now: datetime, ttl: timedelta) -> bool:
    return created_at + ttl <= now


def decide(stored: StoredKey | None, request_hash: str, now: datetime, ttl: timedelta) -> Decision:
    """What a request carrying an Idempotency-Key should do, given what is stored for it.

    An expired key is as good as absent. A request still in progress whose lease has run out
    (its process died) is taken over by the next one with the same body.
    """
    if stored is None or is_expired(stored.created_at, now, ttl):
        return Decision.PROCEED
    # An empty stored hash is a key recorded before bodies were compared: it replays.
    if stored.request_hash and stored.request_hash != request_hash:
        return Decision.MISMATCH
    if stored.state == COMPLETED:
        return Decision.REPLAY
    if stored.locked_until > now:
        return Decision.IN_FLIGHT
    return Decision.PROCEED


_PREFERENCE = re.compile(r"^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*(?:=\s*(\"[^\"]*\"|[^;,\s]*))?")
_SECONDS = re.compile(r"^\d+(\.\d+)?$")


class InvalidPrefer(ValueError):
    pass


def parse_prefer_wait(values: list[str] | None, max_wait: float = MAX_WAIT_S) -> float | None:
    """The `wait` preference (RFC 7240) in seconds, or None when there is none.

    Other preferences are ignored; `wait` must be a number with 0 < N <= max_wait.
    """
    wait: float | None = None
    for value in values or []:
        for item in value.split(","):
            if not item.strip():
                continue
            token = item.split(";", 1)[0]
            m = _PREFERENCE.match(token)
            if m is None or m[1].lower() != "wait":
                continue
            raw = (m[2] or "").strip('"')
            if not _SECONDS.match(raw):
                raise InvalidPrefer(f"wait must be a number of seconds, got {raw!r}")
            seconds = float(raw)
            if not 0 < seconds <= max_wait:
                raise InvalidPrefer(f"wait must be more than 0 and at most {max_wait:g} seconds")
            if wait is not None and wait != seconds:
                raise InvalidPrefer("wait is given more than once")
            wait = seconds
    return wait


def format_wait(seconds: float) -> str:
    return f"wait={seconds:g}"


def waited_status(status: str, error_code: str | None) -> int:
    """HTTP status for POST /v1/generate after `Prefer: wait`: 202 while the job runs, 402 when
    billing refused it for tokens, 200 with the job view once it has ended otherwise."""
    if status == "rejected" and error_code == "insufficient_tokens":
        return 402
    if status in {"succeeded", "failed", "cancelled", "rejected"}:
        return 200
    return 202
