"""Group commit: concurrent callers' items are run together, each caller awaiting its own result.

`submit(item)` queues the item and waits. Queued items are handed to `run` (one call for the
whole batch, which returns one result per item, in order) as soon as one of `max_in_flight`
slots is free: at low load a batch is the one item (plus whatever arrived in the same loop
iteration), so nothing waits on a timer; under load the items that arrive while the slots are
busy form the next batch, so the batch grows with the load and the per-item cost falls.

When `run` fails for a batch of several items, each item is run again on its own, so a failure
reaches only the callers whose item causes it (the failed batch must have had no effect, as a
rolled-back transaction has none).
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_size: int = 256,
        max_in_flight: int = 2,
    ) -> None:
        self._run = run
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append((item, future))
        if not self._scheduled and self._in_flight < self._max_in_flight:
            # On the next loop iteration: the items submitted meanwhile join this batch.
            self._scheduled = True
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        while self._queue and self._in_flight < self._max_in_flight:
            batch, self._queue = self._queue[: self._max_size], self._queue[self._max_size :]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._flush(batch))
            self._tasks.add(task)  # keep a reference until it is done
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[Item, "asyncio.Future[Result]"]]) -> None:
        try:
            await self._settle(batch)
        finally:
            self._in_flight -= 1
            if self._queue and not self._scheduled:
                self._start()

    async def _settle(self, batch: list[tuple[Item, "asyncio.Future[Result]"]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
        except asyncio.CancelledError:  # shutting down: nobody is left waiting for ever
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                _resolve(batch[0][1], exc)
                return
            for single in batch:  # each on its own: the failure reaches only its cause
                await self._settle([single])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _resolve(future, result)


def _resolve(future: "asyncio.Future[Result]", outcome: "Result | Exception") -> None:
    if future.done():  # the caller went away (cancelled); the batch ran all the same
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
