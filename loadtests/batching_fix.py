"""vitrine with a fix for BentoML's adaptive batching wait (BentoML #3630/#3664), for A/B load runs.

    bentoml serve loadtests.batching_fix:Vitrine      # every process of the deployment imports this module first

The problem, in BentoML 1.4.40's CorkDispatcher (bentoml/_internal/marshal/dispatcher.py): after the first
few batches, the dispatcher holds back ("corks") a ready batch while

    n * (wn + dt + o_a) <= optimizer.wait * 0.95

where `optimizer.wait` is the mean, over the last 50 batches, of how long each batch's oldest request waited
before dispatch. That wait includes the time spent queued behind the previous batch (the semaphore that lets
one batch run at a time), which under load is a whole batch time or more. So after a burst (or under steady
load) `optimizer.wait` is large; the dispatcher then idles with requests queued and the model free, each
such held request logs a wait as long as the last, and the mean decays by ~5% per 50 batches: latency stays
high long after the load is gone, and throughput is lost while it lasts. #3630 proposed a fixed target
latency as an alternative strategy (not merged); #3664 zeroed the wait only during the initial training.

The fix: count as "wait" only the time a batch was held while the model was free, i.e. measure each batch's
wait from the later of its oldest request's arrival and the moment the previous batch finished. Corking then
still happens where the optimizer thinks it pays, but queueing behind a running batch no longer feeds back
into more corking. Nothing else of the dispatcher changes.

To adopt it in vitrine, `apply()` would be called at import by runners/encoder.py and runners/index.py (the
processes that batch); this wrapper only lets the load runs compare both without touching those files.
"""

from __future__ import annotations

import time
from typing import Any

_APPLIED = False


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from bentoml._internal.marshal import dispatcher

    release = dispatcher.NonBlockSema.release
    outbound_call = dispatcher.CorkDispatcher.outbound_call

    def release_and_stamp(self: Any) -> None:
        release(self)
        self.released_at = time.time()

    async def outbound_call_from_free(self: Any, inputs_info: Any, training: bool = False) -> Any:
        free_since = getattr(self._sema, "released_at", 0.0)
        if inputs_info and free_since > inputs_info[0].enqueue_time:
            # The request was queued behind the previous batch until then: that is not cork time. (The job has
            # left the queue; its enqueue_time is read again only for this batch's logged wait.)
            inputs_info[0].enqueue_time = free_since
        return await outbound_call(self, inputs_info, training)

    dispatcher.NonBlockSema.release = release_and_stamp  # type: ignore[method-assign]
    dispatcher.CorkDispatcher.outbound_call = outbound_call_from_free  # type: ignore[method-assign]
    _APPLIED = True


apply()

from service import Vitrine  # noqa: E402

__all__ = ["Vitrine", "apply"]
