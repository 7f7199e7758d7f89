"""asyncio helpers the services' background loops share."""

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set (True) or `timeout_s` passed (False).

    Not `asyncio.wait_for(event.wait(), timeout_s)`: on Python 3.11 wait_for returns the
    result when it is cancelled after the event fired in the same loop iteration (CPython
    gh-86296, fixed in 3.12), so a loop that waits on it could swallow its shutdown's cancel
    and run forever. `asyncio.timeout` only turns its own expiry into TimeoutError.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
