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


class Runner:
    """A runner's `info()` for the probe: silent (hangs) or refusing until `back()`, then answering."""

    def __init__(self, *, silent: bool = False) -> None:
        self.up = False
        self.silent = silent
        self.probes = 0

    async def info(self) -> None:
        self.probes += 1
        if not self.up:
            await (hang() if self.silent else refused())

    def back(self) -> None:
        self.up = True


async def test_a_silent_runner_costs_one_deadline_then_calls_fail_at_once_until_the_probe_hears_it():
    runner = Runner(silent=True)
    guard = DependencyGuard("encoder", deadline_s=0.1, probe=runner.info, probe_every_s=0.05)
    guard._last_answer -= 1  # nothing heard for a while
    started = time.perf_counter()
    with pytest.raises(DependencyDown):
        await guard.call(hang)
    assert 0.09 <= time.perf_counter() - started < 0.3 and guard.is_open
    await asyncio.sleep(0.4)  # the probe has waited out its deadline more than once
    assert runner.probes >= 2 and guard.is_open
    started = time.perf_counter()
    for _ in range(20):  # the breaker is open: no request is the probe, none waits
        with pytest.raises(DependencyDown):
            await guard.call(lambda: answer(2))
    assert time.perf_counter() - started < 0.01
    runner.back()
    await asyncio.sleep(0.25)  # one probe interval and one probe deadline at most
    assert not guard.is_open
    assert await guard.call(lambda: answer(3)) == 3
    await guard.close()


async def test_a_refusing_runner_is_back_within_a_probe_interval_of_answering():
    runner = Runner()
    guard = DependencyGuard("index", deadline_s=1.0, probe=runner.info, probe_every_s=0.05)
    with pytest.raises(ConnectionRefusedError):
        await guard.call(refused)
    assert guard.is_open
    await asyncio.sleep(0.2)
    assert guard.is_open and "ConnectionRefusedError" in (guard.last_error or "")
    runner.back()
    back_at = time.perf_counter()
    while guard.is_open:
        await asyncio.sleep(0.005)
    assert time.perf_counter() - back_at < 0.1
    assert await guard.call(lambda: answer(4)) == 4
    await guard.close()


async def test_a_busy_runner_that_keeps_answering_others_only_fails_the_slow_call():
    guard = DependencyGuard("encoder", deadline_s=0.2, probe=Runner().info)
    results = await asyncio.gather(
        guard.call(lambda: answer(1, 0.3)),  # misses its deadline ...
        *(guard.call(lambda d=delay: answer(2, d)) for delay in (0.02, 0.06, 0.1, 0.14, 0.18)),  # ... others come back
        return_exceptions=True,
    )
    assert isinstance(results[0], DependencyDown)
    assert results[1:] == [2] * 5 and not guard.is_open


async def test_refusals_and_shedding_do_not_open_the_breaker():
    busy = DependencyGuard("encoder", deadline_s=1.0, probe=Runner().info, refusals=(ValueError,))

    async def shed() -> int:
        raise ServiceUnavailable("queue full")

    async def bad_request() -> int:
        raise InvalidRequest("the index refused the query")

    async def bad_image() -> int:
        raise ValueError("not an image")

    for call in (shed, bad_request, bad_image):
        with pytest.raises(Exception):  # noqa: B017
            await busy.call(call)
    assert not busy.is_open


async def test_no_deadline_means_the_call_as_it_is():
    guard = DependencyGuard("encoder", deadline_s=None)
    assert await guard.call(lambda: answer(7, 0.05)) == 7


def test_a_deadline_without_a_probe_is_refused():
    with pytest.raises(ValueError, match="probe"):
        DependencyGuard("index", deadline_s=1.0)
