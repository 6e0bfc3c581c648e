"""The startup heap is frozen out of the cyclic GC's collections (runners/serving.py `freeze_startup_heap`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runners import serving


@pytest.fixture
def thawed_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()  # other tests' objects go back to the generations they came from


@pytest.mark.usefixtures("thawed_afterwards")
def test_what_startup_left_alive_is_in_no_generation_a_collection_walks() -> None:
    loaded_at_startup = {"lexicon": ["a", "b"]}  # a tracked container, alive when startup ends
    assert gc.is_tracked(loaded_at_startup)
    serving.freeze_startup_heap()
    assert gc.get_freeze_count() > 0
    assert not any(tracked is loaded_at_startup for tracked in gc.get_objects())


@pytest.mark.usefixtures("thawed_afterwards")
def test_what_serving_allocates_later_is_still_collected() -> None:
    serving.freeze_startup_heap()
    cycle: list[object] = []
    cycle.append(cycle)  # only the cyclic GC can free a cycle
    assert any(tracked is cycle for tracked in gc.get_objects())
    del cycle
    assert gc.collect() >= 1


@pytest.fixture
def default_thresholds_afterwards() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.usefixtures("default_thresholds_afterwards")
def test_a_requests_worth_of_allocations_does_not_start_a_young_collection() -> None:
    serving.freeze_startup_heap()
    young_collections = gc.get_stats()[0]["collections"]
    kept = [{"row": i} for i in range(5_000)]  # a request's dicts and lists: several of CPython's default 700
    assert gc.get_stats()[0]["collections"] == young_collections
    assert len(kept) == 5_000
