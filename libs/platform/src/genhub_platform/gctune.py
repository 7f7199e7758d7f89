"""Garbage-collector settings for a serving process (CPython's cyclic collector).

Under the gateway's accept benchmark the collector took ~12% of its main thread (py-spy
--native: `gc_collect_main`). With the default thresholds (a young collection every 700
net allocations of tracked objects) the objects of the requests in flight are scanned again
and again and promoted, so the older generations fill with objects that die soon after and
full collections walk everything the process imported at start-up (FastAPI, pydantic,
SQLAlchemy, FastStream: several hundred thousand objects), which also shows up as
latency spikes. Once the service has started:

- `gc.freeze()` moves everything alive then (modules, classes, routes, pools, caches) to the
  permanent generation: no collection looks at it again;
- young collections run every `YOUNG_THRESHOLD` allocations instead of 700: most request
  objects are freed by reference counting before a collection sees them; cycles are still
  collected, only later (a bounded amount of extra memory).

Reference counting frees almost everything as before; nothing else about the process changes.
"""

import gc

YOUNG_THRESHOLD = 20_000


def tune_for_serving() -> None:
    """Freeze what start-up left alive and collect the young generation less often."""
    gc.collect()  # start-up's garbage goes now rather than frozen forever
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
