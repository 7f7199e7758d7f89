"""Batch consumers fetch at two paces: answered at the first byte while their topics are quiet,
answered with fuller fetches while they are busy.

A batch consumer asks the broker to hold each fetch until `min_bytes` are ready or
`max_wait_ms` have passed (`FetchTuning`). Under load that turns many one-record fetches,
offset commits and transactions into a few bigger ones (billing at 300 events/s: 1.0 ms of CPU
per event, against 2.0 when every fetch is answered at its first byte). Idle, the same setting
has the broker answer an empty fetch every `max_wait_ms`: 40 a second per consumer at 25 ms,
about a third of a core for the idle local stack (Kafka and five services, against an eighth
answered at the first byte), and an event on a quiet topic waits up to `max_wait_ms` at each hop
for company that never comes.

So a paced consumer starts QUIET and turns busy once it receives `busy_from_per_s` records a
second; at the end of each busy window with fewer than that, it is quiet again.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

log = logging.getLogger(__name__)

FETCH_BUSY = Gauge(
    "genhub_kafka_fetch_busy",
    "1 while a batch consumer fetches at its busy pace (fuller fetches), 0 while quiet",
    ["consumer"],
)


@dataclass(frozen=True)
class FetchTuning:
    """How a consumer fetches (aiokafka's fetch_min_bytes / fetch_max_wait_ms): the broker
    answers once `min_bytes` are ready or `max_wait_ms` passed. The defaults are aiokafka's own
    (answer at the first byte); services get their busy pace from PlatformSettings."""

    min_bytes: int = 1
    max_wait_ms: int = 500


QUIET = FetchTuning()  # answered at the first byte; an idle fetch every 500 ms


class FetchPace:
    """The rule, no I/O: which tuning a consumer fetches with, from what it received.

    Quiet, the records are counted in windows of `window_s` starting at a batch; busy, the
    windows are timed by the caller, who calls `window_ended` every `window_s` (as long as it
    returns True).
    """

    def __init__(self, busy: FetchTuning, *, busy_from_per_s: float, window_s: float = 0.5):
        if busy_from_per_s <= 0 or window_s <= 0:
            raise ValueError("busy_from_per_s and window_s must be positive")
        self.busy = busy
        self.window_s = window_s
        self._enough = busy_from_per_s * window_s
        self._received = 0
        self._window_started = float("-inf")
        self.is_busy = False

    @property
    def tuning(self) -> FetchTuning:
        return self.busy if self.is_busy else QUIET

    def received(self, records: int, now: float) -> bool:
        """Count a fetched batch; True when it turns the consumer busy (time its windows)."""
        if self.is_busy:
            self._received += records
            return False
        if now - self._window_started >= self.window_s:
            self._window_started, self._received = now, 0
        self._received += records
        if self._received < self._enough:
            return False
        self.is_busy, self._received = True, 0
        return True

    def window_ended(self, now: float) -> bool:
        """End a busy window; True while the consumer stays busy (time the next one)."""
        self.is_busy = self._received >= self._enough
        self._received = 0
        self._window_started = now
        return self.is_busy


class FetchPacer:
    """Keeps a running aiokafka consumer's fetches at its `FetchPace`.

    aiokafka reads its fetcher's `_fetch_min_bytes` and `_fetch_max_wait_ms` each time it builds
    a fetch request, and has no public way to change them: the pacer sets those two attributes
    (an e2e test against the real broker proves the fetches follow). Should a later aiokafka
    not have them, the consumer keeps fetching at the pace it was created with (QUIET) and a
    warning says so once.
    """

    def __init__(
        self,
        pace: FetchPace,
        consumer: Callable[[], Any],
        *,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pace = pace
        self._consumer = consumer  # the current aiokafka consumer (a restart makes a new one)
        self._name = name
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._warned = False
        FETCH_BUSY.labels(name).set(0)

    @property
    def tuning(self) -> FetchTuning:
        return self._pace.tuning

    def received(self, records: int) -> None:
        """Call with each fetched batch's size."""
        if self._pace.received(records, self._clock()):
            self._apply()
            self._time_window()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _time_window(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._pace.window_s, self._window_ended)

    def _window_ended(self) -> None:
        self._timer = None
        still_busy = self._pace.window_ended(self._clock())
        self._apply()  # every window: a consumer restarted meanwhile starts at QUIET
        if still_busy:
            self._time_window()

    def _apply(self) -> None:
        tuning = self._pace.tuning
        fetcher = getattr(self._consumer(), "_fetcher", None)
        if fetcher is None:
            return  # not started (or stopped): it starts at QUIET
        if not (hasattr(fetcher, "_fetch_min_bytes") and hasattr(fetcher, "_fetch_max_wait_ms")):
            if not self._warned:
                self._warned = True
                log.warning(
                    "%s: this aiokafka's fetcher cannot be paced; fetching quiet", self._name
                )
            return
        fetcher._fetch_min_bytes = tuning.min_bytes
        fetcher._fetch_max_wait_ms = tuning.max_wait_ms
        FETCH_BUSY.labels(self._name).set(1 if self._pace.is_busy else 0)
