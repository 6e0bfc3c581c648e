"""InFlightBatcher (adapters/coalesce.py): a request's runner call goes out at once while the runner is free, the
calls made in one turn of the event loop go out together, and the requests that come while it is busy share the
next call."""

from __future__ import annotations

import asyncio

import pytest

from adapters.coalesce import InFlightBatcher
from domain.errors import DependencyDown


class SlowRunner:
    """Answers n * 10 for each item (an exception for 13) after `seconds`; records each list and the peak of
    lists out at once."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds
        self.batches: list[list[int]] = []
        self.out = 0
        self.peak = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        self.out += 1
        self.peak = max(self.peak, self.out)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.seconds)
        finally:
            self.out -= 1
        return [ValueError(f"odd {n}") if n == 13 else n * 10 for n in items]


async def test_a_lone_call_goes_out_at_once_without_waiting_for_company():
    runner = SlowRunner(seconds=0)
    batcher: InFlightBatcher[int, int] = InFlightBatcher(runner, max_in_flight=1, max_batch=32)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await batcher(4) == 40
    assert loop.time() - started < 0.01
    assert runner.batches == [[4]]


async def test_calls_arriving_while_one_is_out_share_the_next_call():
    runner = SlowRunner()
    batcher: InFlightBatcher[int, int] = InFlightBatcher(runner, max_in_flight=1, max_batch=32)
    first = asyncio.create_task(batcher(1))
    await asyncio.sleep(0.005)  # the first call is out now
    rest = [asyncio.create_task(batcher(n)) for n in range(2, 12)]
    assert await asyncio.gather(first, *rest) == [n * 10 for n in range(1, 12)]
    assert runner.batches == [[1], list(range(2, 12))]
    assert runner.peak == 1


async def test_never_more_calls_out_than_allowed_and_lists_capped_at_max_batch():
    runner = SlowRunner()
    batcher: InFlightBatcher[int, int] = InFlightBatcher(runner, max_in_flight=2, max_batch=4)
    runner.gate = asyncio.Event()
    first = asyncio.create_task(batcher(0))
    await asyncio.sleep(0.005)
    calls = [asyncio.create_task(batcher(n)) for n in range(1, 12)]
    await asyncio.sleep(0.005)
    assert runner.batches == [[0], [1, 2, 3, 4]]  # one slot was free: the rest wait for a slot
    runner.gate.set()
    assert await asyncio.gather(first, *calls) == [n * 10 for n in range(12)]
    assert runner.batches[2:] == [[5, 6, 7, 8], [9, 10, 11]]
    assert runner.peak == 2


async def test_calls_made_in_one_turn_of_the_loop_go_out_as_one_list():
    """A wave's heavy requests, woken together (adapters/cheap_first.py), each reach the runner in the same turn:
    the first must not go out alone with the rest queued behind it."""
    runner = SlowRunner()
    batcher: InFlightBatcher[int, int] = InFlightBatcher(runner, max_in_flight=1, max_batch=32)
    released = asyncio.Event()

    async def heavy(n: int) -> int:
        await released.wait()
        return await batcher(n)

    calls = [asyncio.create_task(heavy(n)) for n in range(8)]
    await asyncio.sleep(0)
    released.set()
    assert await asyncio.gather(*calls) == [n * 10 for n in range(8)]
    assert runner.batches == [list(range(8))]


async def test_an_exception_result_reaches_only_its_caller_and_a_failed_call_reaches_its_list():
    batcher: InFlightBatcher[int, int] = InFlightBatcher(SlowRunner(), max_in_flight=1, max_batch=32)
    results = await asyncio.gather(batcher(12), batcher(13), return_exceptions=True)
    assert results[0] == 120 and isinstance(results[1], ValueError)

    async def down(items: list[int]) -> list[int | Exception]:
        raise DependencyDown("index", "refused")

    failing: InFlightBatcher[int, int] = InFlightBatcher(down, max_in_flight=1, max_batch=32)
    results = await asyncio.gather(failing(1), failing(2), return_exceptions=True)
    assert all(isinstance(result, DependencyDown) for result in results)
    assert await batcher(3) == 30  # a failed call frees its slot


async def test_a_caller_cancelled_while_waiting_is_left_out_of_the_next_list():
    runner = SlowRunner()
    batcher: InFlightBatcher[int, int] = InFlightBatcher(runner, max_in_flight=1, max_batch=32)
    first = asyncio.create_task(batcher(1))
    await asyncio.sleep(0.005)
    gone = asyncio.create_task(batcher(2))
    kept = asyncio.create_task(batcher(3))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == 10 and await kept == 30
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert runner.batches == [[1], [3]]


def test_limits_below_one_are_refused():
    with pytest.raises(ValueError):
        InFlightBatcher(SlowRunner(), max_in_flight=0, max_batch=4)
