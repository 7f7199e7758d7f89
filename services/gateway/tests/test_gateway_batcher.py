"""The group-commit batcher (adapters/batcher.py): concurrent items go to `run` together, each
caller gets its own result, and a failing batch reaches only the caller that caused it."""

import asyncio
from collections.abc import Sequence

import pytest
from genhub_gateway.adapters.batcher import MicroBatcher


class Recorder:
    def __init__(self, *, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.gate: asyncio.Event | None = None

    async def run(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [item * 10 for item in items]


async def test_items_submitted_together_run_as_one_batch() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder.run, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert recorder.batches == [list(range(10))]


async def test_items_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    batcher = MicroBatcher(recorder.run, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)  # the first batch is running (held at the gate)
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert recorder.batches == [[1]]  # the slot is busy: the others wait together
    recorder.gate.set()
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 40]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_batches_are_capped_at_max_size_and_in_flight() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder.run, max_size=4, max_in_flight=2)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert [len(b) for b in recorder.batches] == [4, 4, 2]
    assert sorted(i for b in recorder.batches for i in b) == list(range(10))


async def test_a_failing_batch_is_retried_item_by_item() -> None:
    recorder = Recorder(fail_on=3)
    batcher = MicroBatcher(recorder.run, max_in_flight=1)
    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
    assert outcomes[:3] == [0, 10, 20] and outcomes[4] == 40
    assert isinstance(outcomes[3], ValueError)
    assert recorder.batches == [[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]


async def test_a_wrong_number_of_results_is_an_error_not_a_mix_up() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return [1] if len(items) > 1 else []

    batcher = MicroBatcher(short)
    with pytest.raises(RuntimeError, match="gave 0 results"):
        await batcher.submit(1)


async def test_a_caller_that_went_away_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    batcher = MicroBatcher(recorder.run, max_in_flight=1)
    leaving = asyncio.ensure_future(batcher.submit(1))
    staying = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.01)
    leaving.cancel()
    recorder.gate.set()
    assert await staying == 20
    assert recorder.batches == [[1, 2]]  # the batch ran (and committed) all the same
    assert await batcher.submit(3) == 30
