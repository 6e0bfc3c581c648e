"""Cheap answers first when requests arrive together (`API_CHEAP_FIRST_HOLD_MS`).

An API worker is one event loop, and asyncio runs whatever is ready in the order it became ready. When a wave of
requests lands at once (storefront clients firing together after a hiccup), that order interleaves them all: a
cached search that needs one Redis read takes its turns between the uncached searches' and recommendations'
runner calls, pickling and enrichment, and finishes when the whole wave's work is done (server-side p95 of a
cached search in a bunched wave: ~200 ms, against ~1 ms alone).

So every API read starts *cheap*: it is parsed, looks in the cache and, on a hit, answers. Its first call to
a runner (an encoder or index call: what an uncached search or a recommendation goes on to do) ends its cheap
phase: the call is sent at once, and its answer waits while other requests of this worker are still in theirs,
at most the hold. A wave's cached answers are then done before the wave's heavy work goes on, and the runners
work on their own cores meanwhile. (Holding the call itself, as this did at first, left the encoder idle while
the worker answered the cheap requests: bunched mix, A/B of sending first, p95 uncached search 180 -> 151 ms,
recommend 171 -> 150; feedback 82 -> 100, most likely its database write meeting the encoder's batch on the
cores: the shoppers wait for searches and recommendations, a storefront sends feedback in the background.)

Writes are never cheap: feedback makes no runner call but is the API's costliest request in CPU (~4 ms: validation,
a durable write, the session update, against ~1 ms for a cache hit), so letting it through first held the wave's
searches and recommendations behind work that answers nobody sooner (bunched mix, A/B: p95 of uncached search 240 ->
191 ms, recommend 247 -> 191, feedback itself 116 -> 100). At a steady rate a request rarely finds another in its
cheap phase, so nothing waits. The hold bounds the wait under sustained load, where cheap requests could otherwise
keep it going for ever.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.in_flight import RequestsInFlight
from adapters.metrics import observe_stage

T = TypeVar("T")


@dataclass
class _Phase:
    cheap: bool = True  # shared by every task the request starts: ended once, whichever task ends it


_phase: contextvars.ContextVar[_Phase | None] = contextvars.ContextVar("vitrine_cheap_phase", default=None)


class CheapFirst:
    """The requests of this worker in their cheap phase, and the wait of those that have left it."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.hold_s = hold_s
        self._in_cheap_phase = RequestsInFlight()

    @property
    def cheap(self) -> int:
        """How many of this worker's requests are in their cheap phase now."""
        return self._in_cheap_phase.count

    def begin(self) -> _Phase:
        phase = _Phase()
        _phase.set(phase)
        self._in_cheap_phase.enter()
        return phase

    def end(self, phase: _Phase) -> None:
        if phase.cheap:
            phase.cheap = False
            self._in_cheap_phase.leave()

    async def turn(self) -> None:
        """This request's cheap phase is over (it called a runner); wait (at most the hold) for the others'."""
        phase = _phase.get()
        if phase is not None:
            self.end(phase)
        if self.cheap == 0 or self.hold_s <= 0:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._in_cheap_phase.until_none(at_most=self.hold_s)  # held long enough: go anyway
        observe_stage("cheap_first_wait", loop.time() - started)

    async def sent_then_turn(self, call: Awaitable[T]) -> T:
        """A runner call sent at once, its answer taken after this request's turn: the runner works on its own
        cores while the worker answers the wave's cheap requests."""
        sent = asyncio.ensure_future(call)
        try:
            await self.turn()
        except BaseException:  # the request was cancelled (its client went away): so is its call
            sent.cancel()
            if sent.done() and not sent.cancelled():
                sent.exception()  # an outcome nobody will read: read here, or asyncio logs it as never retrieved
            raise
        return await sent


WRITES = ("/api/v1/feedback",)  # POSTs that write; every DELETE writes too


def _may_be_cheap(method: str, path: str) -> bool:
    """An API read: not an operator's probe or page, and not a write (the module's docstring says why)."""
    return path.startswith("/api/") and method != "DELETE" and not path.startswith(WRITES)


GATE = CheapFirst()  # per process, so per API worker: the middleware and the runner clients share it


class CheapFirstMiddleware:
    """Counts each API read (not a write, nor the operators' probes and pages) as cheap from arrival until its
    first runner call or its answer, whichever comes first."""

    def __init__(self, app: ASGIApp, *, hold_s: float, gate: CheapFirst = GATE) -> None:
        self.app = app
        self.gate = gate
        gate.hold_s = hold_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_be_cheap(scope.get("method", ""), scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        phase = self.gate.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.end(phase)
