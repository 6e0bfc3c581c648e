"""The runner deadline and breaker (adapters/deadline.py), with real asyncio timing (tens of milliseconds)."""

from __future__ import annotations

import asyncio
import time

import pytest
from bentoml.exceptions import ServiceUnavailable

from adapters.deadline import DependencyGuard
from domain.errors import DependencyDown, InvalidRequest


async def answer(value: int = 1, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return value


async def hang() -> int:
    await asyncio.sleep(60)
    return 0


async def refused() -> int:
    raise ConnectionRefusedError("connection refused")


async def test_a_silent_runner_costs_one_deadline_then_calls_fail_at_once_until_it_answers_again():
    guard = DependencyGuard("encoder", deadline_s=0.1, open_s=0.3)
    guard._last_answer -= 1  # nothing heard for a while
    started = time.perf_counter()
    with pytest.raises(DependencyDown):
        await guard.call(hang)
    assert 0.09 <= time.perf_counter() - started < 0.3 and guard.is_open
    started = time.perf_counter()
    with pytest.raises(DependencyDown):
        await guard.call(lambda: answer(2))  # the breaker is open: not even tried
    assert time.perf_counter() - started < 0.01
    await asyncio.sleep(0.35)
    assert await guard.call(lambda: answer(3)) == 3  # tried again after open_s


async def test_a_busy_runner_that_keeps_answering_others_only_fails_the_slow_call():
    guard = DependencyGuard("encoder", deadline_s=0.2)
    results = await asyncio.gather(
        guard.call(lambda: answer(1, 0.3)),  # misses its deadline ...
        *(guard.call(lambda d=delay: answer(2, d)) for delay in (0.02, 0.06, 0.1, 0.14, 0.18)),  # ... others come back
        return_exceptions=True,
    )
    assert isinstance(results[0], DependencyDown)
    assert results[1:] == [2] * 5 and not guard.is_open


async def test_connection_errors_open_the_breaker_but_refusals_and_shedding_do_not():
    guard = DependencyGuard("index", deadline_s=1.0)
    with pytest.raises(ConnectionRefusedError):
        await guard.call(refused)
    assert guard.is_open

    busy = DependencyGuard("encoder", deadline_s=1.0, refusals=(ValueError,))

    async def shed() -> int:
        raise ServiceUnavailable("queue full")

    async def bad_request() -> int:
        raise InvalidRequest("the index refused the query")

    for call in (shed, bad_request):
        with pytest.raises(Exception):  # noqa: B017
            await busy.call(call)
    assert not busy.is_open


async def test_no_deadline_means_the_call_as_it_is():
    guard = DependencyGuard("encoder", deadline_s=None)
    assert await guard.call(lambda: answer(7, 0.05)) == 7


async def test_after_an_outage_one_call_probes_while_the_others_fail_at_once():
    guard = DependencyGuard("encoder", deadline_s=0.1, open_s=0.05)
    with pytest.raises(ConnectionRefusedError):
        await guard.call(refused)
    await asyncio.sleep(0.06)  # open period over: half-open
    started = time.perf_counter()
    results = await asyncio.gather(
        guard.call(lambda: answer(1, 0.05)), guard.call(lambda: answer(2)), return_exceptions=True
    )
    assert results[0] == 1 and isinstance(results[1], DependencyDown)
    assert time.perf_counter() - started < 0.09
    assert await guard.call(lambda: answer(3)) == 3  # closed again: everyone through
