"""The serving process's collector settings (gctune.py): start-up's objects frozen, young
collections less often, cycles still collected."""

import gc
import weakref
from collections.abc import Iterator

import pytest
from genhub_platform import gctune


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.other: object = self


@pytest.mark.usefixtures("restored_gc")
def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    older = gc.get_threshold()[1:]
    alive_at_start = Node()
    gctune.tune_for_serving()
    assert gc.get_threshold() == (gctune.YOUNG_THRESHOLD, *older)
    assert gc.get_freeze_count() > 0
    assert not any(o is alive_at_start for o in gc.get_objects())  # frozen: never scanned
    cycle = Node()  # garbage made while serving, only reachable from itself
    gone = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert gone() is None
