"""Batch consumers' fetch pace: quiet (answered at the first byte) until busy, then fuller fetches.

The rule is checked on its own; the pacer against a stand-in for aiokafka's fetcher (the e2e
suite proves, against the real broker, that the fetches follow the attributes it sets).
"""

import asyncio
from types import SimpleNamespace

import pytest
from genhub_platform.fetchpace import FETCH_BUSY, QUIET, FetchPace, FetchPacer, FetchTuning

BUSY = FetchTuning(min_bytes=16384, max_wait_ms=25)


def test_a_consumer_starts_quiet_and_turns_busy_at_its_rate() -> None:
    pace = FetchPace(BUSY, busy_from_per_s=50, window_s=0.5)  # 25 records in a window
    assert pace.tuning == QUIET
    assert pace.received(20, now=10.0) is False
    assert pace.received(4, now=10.4) is False
    assert pace.tuning == QUIET
    assert pace.received(1, now=10.45) is True
    assert pace.is_busy and pace.tuning == BUSY
    assert pace.received(100, now=10.5) is False  # already busy: the caller times its windows


def test_quiet_records_count_only_within_a_window() -> None:
    pace = FetchPace(BUSY, busy_from_per_s=50, window_s=0.5)
    for second in range(100):  # 24 records a second, for a long time: never 25 in a window
        assert pace.received(12, now=second) is False
        assert pace.received(12, now=second + 0.3) is False
    assert pace.tuning == QUIET


def test_a_busy_consumer_stays_busy_while_its_windows_are_full_then_turns_quiet() -> None:
    pace = FetchPace(BUSY, busy_from_per_s=50, window_s=0.5)
    pace.received(30, now=0.0)
    pace.received(25, now=0.3)
    assert pace.window_ended(now=0.5) is True
    assert pace.tuning == BUSY
    pace.received(24, now=0.7)
    assert pace.window_ended(now=1.0) is False
    assert pace.tuning == QUIET
    # Quiet again: a new window starts with the next batch.
    assert pace.received(24, now=1.1) is False
    assert pace.received(1, now=1.2) is True


def test_a_pace_needs_a_positive_rate_and_window() -> None:
    with pytest.raises(ValueError):
        FetchPace(BUSY, busy_from_per_s=0)
    with pytest.raises(ValueError):
        FetchPace(BUSY, busy_from_per_s=50, window_s=0)


def _fetcher() -> SimpleNamespace:
    return SimpleNamespace(_fetch_min_bytes=QUIET.min_bytes, _fetch_max_wait_ms=QUIET.max_wait_ms)


def _busy_gauge(name: str) -> float:
    return FETCH_BUSY.labels(name)._value.get()


async def test_the_pacer_sets_the_fetchers_pace_and_times_busy_windows() -> None:
    consumer = SimpleNamespace(_fetcher=_fetcher())
    pace = FetchPace(BUSY, busy_from_per_s=100, window_s=0.05)  # 5 records in a window
    pacer = FetchPacer(pace, lambda: consumer, name="pace-test")
    try:
        pacer.received(3)
        assert (consumer._fetcher._fetch_min_bytes, consumer._fetcher._fetch_max_wait_ms) == (
            1,
            500,
        )
        pacer.received(2)
        assert (consumer._fetcher._fetch_min_bytes, consumer._fetcher._fetch_max_wait_ms) == (
            16384,
            25,
        )
        assert _busy_gauge("pace-test") == 1
        # Kept busy by a full window, while the consumer restarted (a new fetcher, quiet).
        pacer.received(5)
        consumer._fetcher = _fetcher()
        await asyncio.sleep(0.07)
        assert consumer._fetcher._fetch_min_bytes == 16384
        # Then nothing: quiet at the end of the next window.
        await asyncio.sleep(0.06)
        assert (consumer._fetcher._fetch_min_bytes, consumer._fetcher._fetch_max_wait_ms) == (
            1,
            500,
        )
        assert _busy_gauge("pace-test") == 0
        assert pacer.tuning == QUIET
    finally:
        pacer.close()


async def test_a_stopped_consumer_or_an_unknown_fetcher_is_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped = FetchPacer(
        FetchPace(BUSY, busy_from_per_s=100, window_s=0.05), lambda: None, name="pace-stopped"
    )
    stopped.received(10)  # no consumer: nothing to set, no error
    stopped.close()
    other = SimpleNamespace(_fetcher=SimpleNamespace())
    unknown = FetchPacer(
        FetchPace(BUSY, busy_from_per_s=100, window_s=0.05), lambda: other, name="pace-unknown"
    )
    unknown.received(10)
    unknown.close()
    assert vars(other._fetcher) == {}
    assert "cannot be paced" in caplog.text
    assert _busy_gauge("pace-unknown") == 0
