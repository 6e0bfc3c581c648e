"""Turning many concurrent one-item calls into one batch call: how the bulk endpoints reach the runners once.

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
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[list[R | Exception]]],
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
        try:
            async with self._one_at_a_time:
                results = await self._run_batch([item for item, _ in batch])
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
