"""Turning many concurrent one-item calls into one batch call: how the bulk endpoints reach the runners once
(`Coalescer`), and how concurrent requests of one API worker share their runner calls (`InFlightBatcher`).

A bulk request runs its items' pipelines concurrently (domain/bulk.py). Each pipeline asks its encoder for one
query vector and its index for one search, as a single request does; here those asks are gathered while they
keep arriving (the pipelines reach the runner at slightly different moments: some read the cache first) and
sent as one list, so a batch of 100 searches costs one encoder call and one index call instead of 100 each.

    encode = Coalescer(encoder_client.encode_texts)      # list[str] -> list[Vector]
    vector = await encode("black heels")                  # waits with the others, then gets its own answer

A call is held at most `max_wait_s`; the gathered list is sent once no new call came for `quiet_s`, or when
it reaches `max_batch` items (set it to the runner's max_batch_size). Lists go one after another, never two
at once: BentoML's dispatcher answers 503 ("process is overloaded") to a request that waited in its queue
past the runner's max_latency_ms, which is what happened (measured) to the rest of a 100-text call split
into batches of 32 on a busy CPU, and to a second list queued behind a first. An exception from the batch
call reaches every caller of that batch; a result that is an exception reaches only its own caller (one
refused query does not fail the others).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        # The items of a bulk request reach the runner a few ms apart (each reads the cache first), more on a busy
        # box; a bulk job waits seconds anyway, so a generous window costs nothing and saves runner calls.
        quiet_s: float = 0.01,
        max_wait_s: float = 0.2,
        max_batch: int = 1000,
    ) -> None:
        self._run_batch = run_batch
        self._quiet_s = quiet_s
        self._max_wait_s = max_wait_s
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._one_at_a_time = asyncio.Lock()
        self.batches_sent = 0  # for tests and the bulk endpoints' metrics: how many runner calls were made

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_batch:
            self._send(self._take())
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_when_quiet())
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        taken, self._pending = self._pending, []
        return taken

    async def _flush_when_quiet(self) -> None:
        started = time.monotonic()
        try:
            while self._pending:
                seen = len(self._pending)
                await asyncio.sleep(self._quiet_s)
                if len(self._pending) == seen or time.monotonic() - started >= self._max_wait_s:
                    break
        finally:
            self._flusher = None
        if self._pending:
            self._send(self._take())

    def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches_sent += 1
        task = asyncio.create_task(self._deliver(batch))
        _running.add(task)
        task.add_done_callback(_running.discard)

    async def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        async with self._one_at_a_time:
            await _run_and_answer(self._run_batch, batch)


class InFlightBatcher(Generic[T, R]):
    """One request's runner call, merged with the calls of other requests in this worker while the runner is busy.

    A call goes out at the end of the loop's current turn while fewer than `max_in_flight` are out, so an idle
    service adds no wait, and the calls of requests that the same turn woke (a wave's heavy requests, let go
    together once its cheap ones are answered: adapters/cheap_first.py) leave as one list rather than the first
    alone and the rest behind it. Calls that arrive while the limit is reached wait for the next free slot and go
    out together, up to `max_batch` items: under load, or when a wave of requests lands at once, a worker sends a
    few lists instead of one hop per request. Each hop costs the API worker and the runner more CPU (HTTP, pickle,
    validation on both sides) than an item in a batch, so the hops saved are CPU the wave no longer queues behind.
    The runner's adaptive batching still merges the lists of all API workers.

    `run_batch(items)` answers one result per item, in order; a result that is an exception reaches only its
    own caller, an exception from the call reaches every caller of that list. A caller cancelled before its
    list goes out is left out of it.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_in_flight: int,
        max_batch: int,
    ) -> None:
        if max_in_flight < 1 or max_batch < 1:
            raise ValueError("max_in_flight and max_batch must be at least 1")
        self._run_batch = run_batch
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._send_scheduled = False

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if not self._send_scheduled:  # after the callbacks already ready in this turn: their calls join the list
            self._send_scheduled = True
            loop.call_soon(self._send_while_free)
        return await future

    def _send_while_free(self) -> None:
        self._send_scheduled = False
        while self._waiting and self._in_flight < self._max_in_flight:
            batch = [(item, future) for item, future in self._waiting[: self._max_batch] if not future.done()]
            del self._waiting[: self._max_batch]
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.create_task(self._deliver(batch))
            _running.add(task)
            task.add_done_callback(_running.discard)

    async def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            await _run_and_answer(self._run_batch, batch)
        finally:
            self._in_flight -= 1
            self._send_while_free()


async def _run_and_answer(
    run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]], batch: list[tuple[T, asyncio.Future[R]]]
) -> None:
    """Run one list and hand each caller its own result (or the call's exception)."""
    try:
        results = await run_batch([item for item, _ in batch])
        if len(results) != len(batch):
            raise RuntimeError(f"batch call answered {len(results)} results for {len(batch)} items")
    except Exception as exc:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
        return
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():  # its caller was cancelled
            continue
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)


_running: set[asyncio.Task[None]] = set()  # keeps delivery tasks referenced until they finish
