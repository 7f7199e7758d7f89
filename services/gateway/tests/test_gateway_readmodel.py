"""Read-model transition rules: status moves forward only, terminal is final, order converges."""

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from genhub_contracts import JobStatus
from genhub_gateway.domain import readmodel
from genhub_gateway.domain.readmodel import JobProgress, advance

T0 = datetime(2025, 1, 1, tzinfo=UTC)
S = JobStatus


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        (S.QUEUED, S.RESERVED, S.RESERVED),
        (S.QUEUED, S.RUNNING, S.RUNNING),
        (S.RESERVED, S.QUEUED, S.RESERVED),
        (S.RUNNING, S.RESERVED, S.RUNNING),
        (S.RUNNING, S.SUCCEEDED, S.SUCCEEDED),
        (S.QUEUED, S.REJECTED, S.REJECTED),
        (S.SUCCEEDED, S.RUNNING, S.SUCCEEDED),
        (S.SUCCEEDED, S.FAILED, S.SUCCEEDED),
        (S.CANCELLED, S.SUCCEEDED, S.CANCELLED),
        (S.REJECTED, S.RESERVED, S.REJECTED),
    ],
)
def test_status_only_moves_forward_and_terminal_is_final(
    current: JobStatus, incoming: JobStatus, expected: JobStatus
) -> None:
    assert advance(current, incoming) == expected


OUTPUT = {"index": 0, "key": "outputs/a/j/0.png", "content_type": "image/png", "width": 512,
          "height": 512, "bytes": 1234, "sha256": "ab"}  # fmt: skip

Step = Callable[[JobProgress], JobProgress]

HAPPY_STEPS: dict[str, Step] = {
    "reserved": lambda p: readmodel.on_reserved(p, amount=10, at=at(1)),
    "started": lambda p: readmodel.on_started(p, provider="mock", attempt=1, at=at(2)),
    "completed": lambda p: readmodel.on_completed(
        p,
        status=S.SUCCEEDED,
        outputs=[OUTPUT],
        error_code=None,
        error_message=None,
        provider="mock",
        attempts=1,
        at=at(3),
    ),
    "settled": lambda p: readmodel.on_settled(p, charged=10, refunded=0, at=at(4)),
}


def run(steps: list[Step]) -> JobProgress:
    progress = JobProgress()
    for step in steps:
        progress = step(progress)
    return progress


def test_happy_path_in_order() -> None:
    p = run(list(HAPPY_STEPS.values()))
    assert p.status == S.SUCCEEDED
    assert (p.tokens_reserved, p.tokens_charged, p.tokens_refunded) == (10, 10, 0)
    assert p.provider == "mock"
    assert p.attempts == 1
    assert p.outputs == [OUTPUT]
    assert (p.reserved_at, p.started_at, p.completed_at, p.settled_at) == (
        at(1),
        at(2),
        at(3),
        at(4),
    )


@pytest.mark.parametrize("order", list(itertools.permutations(HAPPY_STEPS)))
def test_every_arrival_order_converges(order: tuple[str, ...]) -> None:
    expected = run(list(HAPPY_STEPS.values()))
    assert run([HAPPY_STEPS[name] for name in order]) == expected


def test_applying_an_event_twice_changes_nothing() -> None:
    once = run(list(HAPPY_STEPS.values()))
    assert run(list(HAPPY_STEPS.values()) * 2) == once


def test_job_started_after_job_completed_keeps_the_terminal_status_and_provider() -> None:
    done = readmodel.on_completed(
        JobProgress(status=S.RESERVED),
        status=S.FAILED,
        outputs=[],
        error_code="provider_error",
        error_message="boom",
        provider="fallback",
        attempts=2,
        at=at(5),
    )
    late = readmodel.on_started(done, provider="primary", attempt=1, at=at(2))
    assert late.status == S.FAILED
    assert late.provider == "fallback"
    assert late.attempts == 2
    assert late.error_code == "provider_error"
    assert late.started_at == at(2)  # the fact that it started is still recorded


def test_tokens_settled_before_job_completed_keeps_tokens_and_then_completes() -> None:
    p = readmodel.on_settled(JobProgress(status=S.RUNNING), charged=0, refunded=10, at=at(4))
    assert p.status == S.RUNNING
    assert (p.tokens_charged, p.tokens_refunded) == (0, 10)
    p = readmodel.on_completed(
        p,
        status=S.FAILED,
        outputs=[],
        error_code="provider_error",
        error_message="boom",
        provider="mock",
        attempts=1,
        at=at(3),
    )
    assert p.status == S.FAILED
    assert (p.tokens_charged, p.tokens_refunded) == (0, 10)


def test_rejection_records_reason_and_amounts_and_is_final() -> None:
    p = readmodel.on_rejected(
        JobProgress(),
        reason="insufficient_tokens",
        message="needs 10, has 9",
        balance=9,
        required=10,
        at=at(1),
    )
    assert p.status == S.REJECTED
    assert (p.error_code, p.error_message) == ("insufficient_tokens", "needs 10, has 9")
    assert p.error_details == {"balance": 9, "required": 10}
    assert HAPPY_STEPS["completed"](p) == p
    assert readmodel.on_reserved(p, amount=10, at=at(2)).status == S.REJECTED


def test_a_second_completion_never_overwrites_the_first() -> None:
    first = HAPPY_STEPS["completed"](JobProgress(status=S.RUNNING))
    again = readmodel.on_completed(
        first,
        status=S.CANCELLED,
        outputs=[],
        error_code="cancelled",
        error_message="x",
        provider=None,
        attempts=1,
        at=at(9),
    )
    assert again == first


def test_outputs_are_kept_in_index_order() -> None:
    outputs = [{**OUTPUT, "index": 1}, {**OUTPUT, "index": 0}]
    p = readmodel.on_completed(
        JobProgress(),
        status=S.SUCCEEDED,
        outputs=outputs,
        error_code=None,
        error_message=None,
        provider="mock",
        attempts=1,
        at=at(1),
    )
    assert [o["index"] for o in p.outputs] == [0, 1]


# --- folding a job's events into one write (what the projection does per batch) -----------------

FOLD_STEPS: dict[str, readmodel.Step] = {
    "reserved": readmodel.Reserved(amount=10, at=at(1)),
    "started": readmodel.Started(provider="primary", attempt=1, at=at(2)),
    "retried": readmodel.Started(provider="fallback", attempt=2, at=at(3)),
    "completed": readmodel.Completed(
        status=S.SUCCEEDED,
        outputs=[{**OUTPUT, "index": 1}, OUTPUT],
        error_code=None,
        error_message=None,
        provider="final",
        attempts=4,
        at=at(4),
    ),
    "rejected": readmodel.Rejected(
        reason="insufficient_tokens", message="needs 10", balance=1, required=10, at=at(5)
    ),
    "settled": readmodel.Settled(charged=10, refunded=0, at=at(6)),
}

# A completion that names no provider keeps the one the job started with.
FAILED_WITHOUT_PROVIDER = readmodel.Completed(
    status=S.FAILED,
    outputs=[],
    error_code="provider_error",
    error_message="boom",
    provider=None,
    attempts=1,
    at=at(7),
)

STARTING_ROWS = {
    "new": JobProgress(),
    "running": JobProgress(status=S.RUNNING, provider="earlier", attempts=3, started_at=at(0)),
    "failed": JobProgress(
        status=S.FAILED, provider="x", attempts=1, error_code="provider_error", completed_at=at(0)
    ),
    "reserved, settled": JobProgress(
        status=S.RESERVED, tokens_reserved=5, reserved_at=at(0), tokens_charged=0, settled_at=at(0)
    ),
}


def one_by_one(p: JobProgress, steps: list[readmodel.Step]) -> JobProgress:
    for step in steps:
        p = step.apply(p)
    return p


@pytest.mark.parametrize("start", list(STARTING_ROWS))
def test_a_folded_batch_writes_what_its_events_one_by_one_would(start: str) -> None:
    # Every order of every event kind (two starts, two endings), from several rows, in one
    # batch and split over two batches (the cut moves along with the permutations).
    row = STARTING_ROWS[start]
    for n, order in enumerate(itertools.permutations(FOLD_STEPS.values())):
        steps = list(order)
        expected = one_by_one(row, steps)
        assert readmodel.apply_delta(readmodel.fold(steps), row) == expected, order
        cut = 1 + n % (len(steps) - 1)
        first = readmodel.apply_delta(readmodel.fold(steps[:cut]), row)
        assert readmodel.apply_delta(readmodel.fold(steps[cut:]), first) == expected, order


def test_a_batch_with_a_subset_of_events_and_repeats_matches_too() -> None:
    for row in STARTING_ROWS.values():
        for size in range(0, 4):
            for combo in itertools.product(
                [*FOLD_STEPS.values(), FAILED_WITHOUT_PROVIDER], repeat=size
            ):
                steps = list(combo)
                assert readmodel.apply_delta(readmodel.fold(steps), row) == one_by_one(row, steps)


def test_an_empty_fold_changes_nothing() -> None:
    for row in STARTING_ROWS.values():
        assert readmodel.apply_delta(readmodel.fold([]), row) == row


def test_the_first_ending_in_a_batch_is_final() -> None:
    d = readmodel.fold([FOLD_STEPS["rejected"], FOLD_STEPS["completed"]])
    assert d.ending is not None and d.ending.status == S.REJECTED
    assert readmodel.apply_delta(d, JobProgress()).outputs == []
