"""Background work waits for the API worker to be between requests (adapters/in_flight.py), up to a bound: the
count the in-flight middleware keeps, and the profile recompute that waits on it (adapters/user_state.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from adapters import user_state
from adapters.cache import Cache
from adapters.in_flight import RequestsInFlight
from adapters.user_state import Profiles
from domain.ports import Vector


async def test_with_no_request_in_flight_the_wait_is_over_at_once():
    requests = RequestsInFlight()
    await asyncio.wait_for(requests.until_none(at_most=10), timeout=0.1)


async def test_the_wait_ends_when_the_last_request_in_flight_leaves():
    requests = RequestsInFlight()
    requests.enter()
    requests.enter()
    waiter = asyncio.create_task(requests.until_none(at_most=10))
    requests.leave()
    await asyncio.sleep(0.01)
    assert not waiter.done()  # one request is still in flight
    requests.leave()
    await asyncio.wait_for(waiter, timeout=0.1)


async def test_requests_that_keep_coming_hold_the_wait_no_longer_than_its_bound():
    requests = RequestsInFlight()
    requests.enter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await requests.until_none(at_most=0.05)
    assert 0.04 <= loop.time() - started < 1
    requests.leave()


class CountedProfiles(Profiles):
    """The scheduling rule of the real Profiles; a recompute only records which user it was for."""

    def __init__(self, until_quiet: Any) -> None:
        super().__init__(
            cast(Cache, None), cast(Any, None), cast(Any, None), model_tag=str, ttl=1, until_quiet=until_quiet
        )
        self.recomputed: list[int] = []

    async def recompute(self, user_id: int) -> Vector | None:
        self.recomputed.append(user_id)
        return None


async def test_a_profile_recompute_waits_for_the_worker_to_be_quiet(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(user_state, "PROFILE_COALESCE_S", 0.0)
    requests = RequestsInFlight()
    requests.enter()  # a wave is being answered
    profiles = CountedProfiles(until_quiet=lambda: requests.until_none(at_most=10))
    profiles.schedule(7)
    profiles.schedule(7)  # a second event of the same user shares the run
    await asyncio.sleep(0.05)
    assert profiles.recomputed == []
    requests.leave()
    await asyncio.wait_for(profiles.drain(), timeout=1)
    assert profiles.recomputed == [7]
