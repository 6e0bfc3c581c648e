"""vitrine's adaptive batching policy for BentoML's CorkDispatcher, applied at import by both runners.

Two things are wrong with BentoML 1.4.40's dispatcher (bentoml/_internal/marshal/dispatcher.py) for a shop.

1. After overload it holds batches back for minutes (BentoML issues #3630 and #3664). Once trained, it holds a
   ready batch while `n * (wn + dt + o_a) <= optimizer.wait * 0.95`, where `optimizer.wait` is the mean, over
   the last 50 batches, of how long each batch's oldest request waited before dispatch. That wait includes time
   queued behind the batch in progress, so after a burst it is hundreds of ms; the dispatcher then idles with
   requests queued and the model free, each request held that long logs a wait as long as the last, and the mean
   decays by ~5% per 50 batches. Measured here (loadtests/README.md): uncached search at 3 req/s ran at 4.8x its
   earlier p50 after a ramp past saturation, and took 50 s to come back after a 10 s burst.
2. Without that accident it never holds on purpose. Measuring the wait from when the model was free (vitrine's
   first fix) brought latency back after bursts, but made the dispatcher greedy: a free model runs whatever is
   queued, so at moderate load a CPU text tower runs batch after batch of one, paying its fixed per-batch cost
   (~15-20 ms of ViT-B-32 text here, against ~5 ms per query) every time, on cores it shares with everything
   else; the stock dispatcher's accidental holding had made 1.7x the throughput at p95 < 150 ms.

The policy here replaces the cork rule (the dispatcher's training, shedding and everything else stay BentoML's):
a free model holds its queue for company only when the arrival rate says company will come within the hold
budget, `HOLD_COST_MULTIPLE` x one batch's fixed cost (BentoML's own fitted `o_b` of batch time = o_a * n + o_b;
at most a quarter of max_latency):

    hold  iff  oldest_wait < budget  and  queued < min(max_batch_size, 1 + floor(arrival_rate x budget))

- Sharing a fixed cost of `o_b` between requests saves CPU for a bounded latency; at low rates (less than one
  more request expected within the budget) nothing is held at all, and no request is held past the budget.
- The arrival rate is counted over the last second, and the wait is the oldest request's own, so after a burst
  the hold shrinks within a second and a request that queued behind a running batch (its wait already past
  the budget) is never held further: nothing feeds back into later holding (#3630 cannot come back).
- The index's batches cost ~1 ms of fixed cost, so its hold is ~nothing: it runs greedily.

It patches private methods (`CorkDispatcher.controller`, `inbound_call`), so it checks they are there and
otherwise leaves BentoML as it is, with a warning: an upgrade can at worst bring the stock behaviour back,
never break serving. BATCHING_POLICY=stock (domain/settings.py) leaves BentoML as it is, for A/B runs.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from typing import Any

log = logging.getLogger("vitrine.batching")

HOLD_COST_MULTIPLE = 2.0
RATE_WINDOW_S = 1.0

_applied = False


def is_applied() -> bool:
    return _applied


def hold_budget(fixed_cost_s: float, max_latency_s: float) -> float:
    """How long the oldest request may wait for company: one batch's fixed cost, bounded."""
    return min(max(fixed_cost_s, 0.0) * HOLD_COST_MULTIPLE, max_latency_s / 4)


def should_hold(queued: int, oldest_wait_s: float, arrival_rate: float, *, max_batch: int, budget_s: float) -> bool:
    """Whether a free model should wait for more requests before running the `queued` ones."""
    expected = 1 + math.floor(arrival_rate * budget_s)  # the batch the budget's arrivals would make
    return oldest_wait_s < budget_s and queued < min(max_batch, expected)


class ArrivalRate:
    """Requests per second over the last `RATE_WINDOW_S`."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()

    def arrived(self, at: float) -> None:
        self._times.append(at)

    def per_second(self, now: float) -> float:
        while self._times and self._times[0] < now - RATE_WINDOW_S:
            self._times.popleft()
        return len(self._times) / RATE_WINDOW_S


def apply(enabled: bool = True) -> bool:
    """Patch BentoML's dispatcher in this process (idempotent); whether vitrine's policy is in force."""
    global _applied
    if _applied or not enabled:
        return _applied
    try:
        from bentoml._internal.marshal import dispatcher

        inbound_call = dispatcher.CorkDispatcher.inbound_call
        train = dispatcher.CorkDispatcher.train_optimizer
        dispatcher.CorkDispatcher._get_inputs  # noqa: B018 - checked to exist: the loop below calls it
    except (ImportError, AttributeError) as exc:
        log.warning("BentoML's dispatcher has changed (%s); adaptive batching runs unpatched", exc)
        return False

    async def inbound_call_counted(self: Any, data: Any) -> Any:
        _rate(self).arrived(time.time())
        return await inbound_call(self, data)

    async def controller(self: Any) -> None:
        try:  # BentoML's own training: it fits o_a / o_b (batch time = o_a * n + o_b) for shedding and the hold
            skipped = self.optimizer.N_SKIPPED_SAMPLE
            await train(self, skipped, skipped + 6, 1)
            for required, size in ((6, 1), (5, 2), (3, 3)):
                await train(self, required, 1, size)
                self.optimizer.trigger_refresh()
        except Exception:
            log.exception("error training the batching optimizer")
        while True:
            try:
                await _dispatch_once(self)
            except Exception:
                log.exception("error dispatching a batch")

    dispatcher.CorkDispatcher.inbound_call = inbound_call_counted  # type: ignore[method-assign]
    dispatcher.CorkDispatcher.controller = controller  # type: ignore[method-assign]
    _applied = True
    return True


def _rate(dispatcher: Any) -> ArrivalRate:
    rate: ArrivalRate | None = getattr(dispatcher, "_vitrine_arrivals", None)
    if rate is None:
        rate = dispatcher._vitrine_arrivals = ArrivalRate()
    return rate


async def _dispatch_once(self: Any) -> None:
    """One turn of the dispatcher's loop: BentoML's, with the cork rule replaced by `should_hold`."""
    async with self._wake_event:  # until any request is queued
        await self._wake_event.wait_for(self._queue.__len__)
    queued = len(self._queue)
    now = time.time()
    oldest_wait = now - self._queue[0].enqueue_time
    o_a, o_b = self.optimizer.o_a, self.optimizer.o_b
    # Shedding, as BentoML does it: a request that cannot be answered within max_latency gets a 503 now.
    if queued > 1 and oldest_wait + o_a * queued + o_b >= self.max_latency:
        self._queue.popleft().future.cancel()
        return
    if self._sema.is_locked():  # the model is busy: wait for it
        if queued == 1 and oldest_wait >= self.max_latency:
            self._queue.popleft().future.cancel()
            return
        await asyncio.sleep(self.TICKET_INTERVAL)
        return
    budget = hold_budget(o_b, self.max_latency)
    if should_hold(queued, oldest_wait, _rate(self).per_second(now), max_batch=self.max_batch_size, budget_s=budget):
        await asyncio.sleep(self.TICKET_INTERVAL)
        return
    self._sema.acquire()
    inputs_info = tuple(self._get_inputs())
    self._loop.create_task(self.outbound_call(inputs_info))
