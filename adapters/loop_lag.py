"""How late this worker's event loop runs: a gauge per API worker and a stage in `/performance`.

Every handler, cache call and database call of a worker shares one event loop. When a wave of requests
arrives at once the loop runs their CPU work back to back, and everything waiting on it (a Redis reply already
in the socket, a timer) is served late by that much. A sleeper that asks to wake every `INTERVAL_S` measures
it: how much later than asked it woke is the loop's lag at that moment.

- `vitrine_event_loop_lag_seconds{pid}`: the latest lag, one series per live worker process (the pid label
  is prometheus_client's own, in BentoML's multiprocess mode).
- stage `event_loop_lag` (ms) in `/performance` and `vitrine_stage_seconds`: the distribution, across workers.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge

from adapters.metrics import observe_stage

INTERVAL_S = 0.1

LOOP_LAG = Gauge(
    "vitrine_event_loop_lag_seconds",
    "How late the API worker's event loop woke a timer, latest sample",
    multiprocess_mode="liveall",
)


async def watch_loop_lag() -> None:
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + INTERVAL_S
        await asyncio.sleep(INTERVAL_S)
        lag = max(0.0, loop.time() - asked)
        LOOP_LAG.set(lag)
        observe_stage("event_loop_lag", lag)
