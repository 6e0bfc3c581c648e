"""A fix for BentoML's adaptive batching after overload (BentoML issues #3630 and #3664), applied at import.

The problem, in BentoML 1.4.40's CorkDispatcher (bentoml/_internal/marshal/dispatcher.py): once trained, the
dispatcher holds back ("corks") a ready batch while

    n * (wn + dt + o_a) <= optimizer.wait * 0.95

where `optimizer.wait` is the mean, over the last 50 batches, of how long each batch's oldest request waited
before dispatch. That wait includes the time spent queued behind the batch in progress (one batch runs at a
time), which under load is a whole batch time or more. So after a burst, or any spell near saturation,
`optimizer.wait` is hundreds of ms; the dispatcher then idles with requests queued and the model free, each
request held that long logs a wait as long as the last, and the mean decays by ~5% per 50 batches. Measured
here (loadtests/README.md): uncached search at 3 req/s ran at 4.8x its earlier p50 after a ramp past
saturation, and took 50 s to come back after a 10 s burst. #3630 proposed a fixed target latency instead
(not merged); #3664 zeroed the wait only during the initial training.

The fix: count as "wait" only the time a batch was held while the model was free, i.e. measure each batch's
wait from the later of its oldest request's arrival and the moment the previous batch finished, so queueing
behind a running batch no longer feeds back into more corking. Nothing else of the dispatcher changes. With
it, latency after a burst is what it was before; the price is throughput near saturation (the stock
dispatcher's holding made larger batches there: 19 against 11 req/s at p95 < 150 ms in the run of record).

It patches two private methods, so it checks that they are still there and otherwise leaves BentoML as it
is (with a warning): a BentoML upgrade can at worst bring the stock behaviour back, never break serving.
BATCHING_WAIT_FROM_FREE=false (domain/settings.py) turns it off, for A/B load runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("vitrine.batching")

_applied = False


def is_applied() -> bool:
    return _applied


def apply(enabled: bool = True) -> bool:
    """Patch BentoML's dispatcher in this process (idempotent); whether the fix is in place."""
    global _applied
    if _applied or not enabled:
        return _applied
    try:
        from bentoml._internal.marshal import dispatcher

        release: Callable[[Any], None] = dispatcher.NonBlockSema.release
        outbound_call: Callable[..., Awaitable[Any]] = dispatcher.CorkDispatcher.outbound_call
    except (ImportError, AttributeError) as exc:
        log.warning("BentoML's dispatcher has changed (%s); adaptive batching runs unpatched", exc)
        return False

    def release_and_stamp(self: Any) -> None:
        release(self)
        self.released_at = time.time()

    async def outbound_call_from_free(self: Any, inputs_info: Any, training: bool = False) -> Any:
        free_since = getattr(self._sema, "released_at", 0.0)
        if inputs_info and free_since > inputs_info[0].enqueue_time:
            # Queued behind the previous batch until then: that is not cork time. (The job has left the
            # queue; its enqueue_time is read again only for this batch's logged wait.)
            inputs_info[0].enqueue_time = free_since
        return await outbound_call(self, inputs_info, training)

    dispatcher.NonBlockSema.release = release_and_stamp  # type: ignore[method-assign]
    dispatcher.CorkDispatcher.outbound_call = outbound_call_from_free  # type: ignore[method-assign]
    _applied = True
    return True
