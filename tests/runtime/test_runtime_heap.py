"""freeze_heap(): the serving process puts its start-up heap out of the cyclic garbage collector's reach."""

from __future__ import annotations

import gc
import weakref

from engine.runtime.heap import freeze_heap


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_freeze_heap_keeps_live_objects_out_of_collections_and_still_collects_new_cycles() -> None:
    gc.unfreeze()
    live = [_Node() for _ in range(1000)]
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(live)
        later = _Node()
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None  # a cycle made after the freeze is collected as before
    finally:
        gc.unfreeze()
