"""After startup the cyclic GC leaves the startup heap alone and collects the young generation rarely
(runners/serving.py `settle_gc_after_startup`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runners import serving


@pytest.fixture
def gc_restored_afterwards() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()  # other tests' objects go back to the generations they came from
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("gc_restored_afterwards")
def test_what_startup_left_alive_is_in_no_generation_a_collection_walks() -> None:
    loaded_at_startup = {"lexicon": ["a", "b"]}  # a tracked container, alive when startup ends
    assert gc.is_tracked(loaded_at_startup)
    serving.settle_gc_after_startup()
    assert gc.get_freeze_count() > 0
    assert not any(tracked is loaded_at_startup for tracked in gc.get_objects())


@pytest.mark.usefixtures("gc_restored_afterwards")
def test_what_serving_allocates_later_is_still_collected() -> None:
    serving.settle_gc_after_startup()
    cycle: list[object] = []
    cycle.append(cycle)  # only the cyclic GC can free a cycle
    assert any(tracked is cycle for tracked in gc.get_objects())
    del cycle
    assert gc.collect() >= 1


@pytest.mark.usefixtures("gc_restored_afterwards")
def test_what_the_requests_in_flight_hold_does_not_start_a_young_collection() -> None:
    serving.settle_gc_after_startup()
    young_collections = gc.get_stats()[0]["collections"]
    kept = [{"row": i} for i in range(5_000)]  # the containers requests in flight hold: 7x CPython's default 700
    assert gc.get_stats()[0]["collections"] == young_collections
    assert len(kept) == 5_000
