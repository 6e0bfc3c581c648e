"""Cheap answers first when requests arrive together (adapters/cheap_first.py)."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from adapters.cheap_first import CheapFirst, CheapFirstMiddleware


async def cached_search(gate: CheapFirst, lookup_done: asyncio.Event, order: list[str]) -> None:
    """A request answered from the cache: cheap from arrival until its lookup (held open by the test) is done."""
    phase = gate.begin()
    await lookup_done.wait()
    order.append("cached answered")
    gate.end(phase)


async def test_a_runner_call_waits_for_requests_still_in_their_cache_lookup() -> None:
    gate = CheapFirst(hold_s=5.0)
    order: list[str] = []
    lookup_done = asyncio.Event()

    async def uncached_search() -> None:
        gate.begin()
        await asyncio.sleep(0)  # its own lookup missed
        await gate.turn()  # the encoder call
        order.append("encoder called")

    cached = asyncio.create_task(cached_search(gate, lookup_done, order))
    uncached = asyncio.create_task(uncached_search())
    await asyncio.sleep(0.05)
    assert order == [] and gate.cheap == 1  # the uncached search has left its cheap phase and waits
    lookup_done.set()
    await asyncio.gather(cached, uncached)
    assert order == ["cached answered", "encoder called"]
    assert gate.cheap == 0


async def test_a_runner_call_is_sent_at_once_and_its_answer_taken_after_the_cheap_requests() -> None:
    """The runner works while the worker answers the wave's cheap requests; the heavy request goes on after."""
    gate = CheapFirst(hold_s=5.0)
    order: list[str] = []
    lookup_done = asyncio.Event()

    async def encoder_call() -> str:
        order.append("encoder called")
        return "vector"

    async def uncached_search() -> None:
        gate.begin()
        await asyncio.sleep(0)
        vector = await gate.sent_then_turn(encoder_call())
        order.append(f"went on with the {vector}")

    cached = asyncio.create_task(cached_search(gate, lookup_done, order))
    uncached = asyncio.create_task(uncached_search())
    await asyncio.sleep(0.05)
    assert order == ["encoder called"]  # sent while the cached search is still in its lookup
    lookup_done.set()
    await asyncio.gather(cached, uncached)
    assert order == ["encoder called", "cached answered", "went on with the vector"]


async def test_a_request_cancelled_while_it_waits_its_turn_cancels_its_runner_call() -> None:
    gate = CheapFirst(hold_s=5.0)
    gate.begin()  # another request, in its cheap phase for as long as this test lasts
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def runner_call() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def heavy() -> None:
        gate.begin()
        await gate.sent_then_turn(runner_call())

    request = asyncio.create_task(heavy())
    await started.wait()
    request.cancel()  # the client went away
    await asyncio.wait_for(cancelled.wait(), timeout=1.0)
    assert request.cancelled()


async def test_the_wait_is_bounded_by_the_hold() -> None:
    gate = CheapFirst(hold_s=0.05)
    gate.begin()  # a request that stays in its cheap phase (in another task, say)

    async def heavy() -> float:
        gate.begin()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await gate.turn()
        return loop.time() - started

    waited = await asyncio.create_task(heavy())
    assert 0.04 <= waited < 0.5


async def test_nothing_waits_when_no_other_request_is_cheap_or_the_hold_is_zero() -> None:
    gate = CheapFirst(hold_s=5.0)

    async def alone() -> None:
        gate.begin()
        await gate.turn()

    await asyncio.wait_for(asyncio.create_task(alone()), timeout=0.5)
    off = CheapFirst(hold_s=0.0)
    off.begin()
    await asyncio.wait_for(off.turn(), timeout=0.5)


async def test_a_request_whose_tasks_each_call_a_runner_leaves_its_cheap_phase_once() -> None:
    gate = CheapFirst(hold_s=5.0)
    other = gate.begin()  # the phase a parallel request holds

    async def request() -> None:
        gate.begin()
        gate.end(other)  # the other request answers meanwhile
        # e.g. a recommendation's index search and a query encoding at once: tasks copy the request's context
        await asyncio.gather(gate.turn(), gate.turn())

    await asyncio.create_task(request())
    assert gate.cheap == 0  # not -1: the shared phase was ended once


async def test_the_middleware_counts_api_reads_until_they_answer_even_when_they_fail() -> None:
    gate = CheapFirst()
    seen: list[int] = []

    async def record(_request: Request) -> PlainTextResponse:
        seen.append(gate.cheap)
        return PlainTextResponse("ok")

    async def broken(_request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    app = Starlette(
        routes=[
            Route("/api/v1/search", record, methods=["POST"]),
            Route("/api/v1/broken", broken),
            Route("/health", record),
            Route("/api/v1/feedback", record, methods=["POST"]),
            Route("/api/v1/users/7", record, methods=["DELETE"]),
        ]
    )
    wrapped = CheapFirstMiddleware(app, hold_s=0.05, gate=gate)
    transport = httpx.ASGITransport(app=wrapped, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://vitrine") as client:
        assert (await client.post("/api/v1/search")).status_code == 200
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/api/v1/broken")).status_code == 500
        assert (await client.post("/api/v1/feedback")).status_code == 200
        assert (await client.delete("/api/v1/users/7")).status_code == 200
    # The search counted while it ran; the probe and the writes never (a write is never cheap).
    assert seen == [1, 0, 0, 0]
    assert gate.cheap == 0 and gate.hold_s == 0.05
