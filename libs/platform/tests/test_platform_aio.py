"""wait_event: the background loops' wait, and their shutdown's cancel never lost."""

import asyncio

from genhub_platform.aio import wait_event


async def test_true_when_set_false_after_the_timeout() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True
    assert await wait_event(asyncio.Event(), 0.01) is False


async def test_a_cancel_that_arrives_with_the_event_stops_the_loop() -> None:
    """The shape of the outbox relay, the orchestrator's worker and the notifier's dispatcher:
    wait, work, wait again. The event firing in the same iteration as the cancel (a send
    finished as shutdown began) must not eat the cancel, as asyncio.wait_for does on 3.11."""
    event = asyncio.Event()
    rounds = 0

    async def loop_forever() -> None:
        nonlocal rounds
        while True:
            event.clear()
            await wait_event(event, 5)
            rounds += 1

    task = asyncio.create_task(loop_forever())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    assert done == {task} and task.cancelled()
    assert rounds == 0
