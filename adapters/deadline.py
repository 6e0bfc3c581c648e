"""A deadline and a breaker for calls to a runner, so a runner that died costs a request about a second.

A runner killed mid-flight does not refuse connections: its socket is held by the supervisor while a new
worker loads, so a call would wait out the whole reload (15 s measured for the encoder). Each call gets
`deadline_s`. A call that fails opens the breaker for `open_s`, during which calls fail at once without touching
the runner; the first call after that tries again, so the runner is back in use as soon as it answers. A call
that misses its deadline opens it only when nothing has come back from the runner for half a deadline: a runner
that is merely busy (a burst, a loaded machine) keeps answering other calls, and only the slow call gives up.
Failures are `DependencyDown` (503, retryable), which the search pipeline answers from its keyword leg when the
encoder is the one down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bentoml.exceptions import InvalidArgument

from domain.errors import DependencyDown, VitrineError
from domain.settings import Settings

T = TypeVar("T")


class DependencyGuard:
    def __init__(
        self,
        dependency: str,
        *,
        deadline_s: float | None,
        open_s: float = 1.0,
        refusals: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.dependency = dependency
        # Errors that mean the runner answered (a refusal of this request), not that it is down.
        self.refusals: tuple[type[BaseException], ...] = (VitrineError, *refusals)
        self.deadline_s = deadline_s
        self.open_s = open_s
        self._open_until = 0.0
        self._probing = False
        self._last_answer = time.monotonic()
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    async def call(self, make_call: Callable[[], Awaitable[T]], *, deadline_scale: float = 1.0) -> T:
        """`deadline_scale` stretches the deadline for calls that are slow by nature (an image to encode)."""
        if self.deadline_s is None:
            return await make_call()
        if self.is_open or self._probing:
            raise DependencyDown(self.dependency, f"not answering (last: {self.last_error}); retrying shortly")
        # After an outage one call at a time probes the runner (half-open); the others keep failing at once.
        probing = self._probing = self.last_error is not None
        try:
            return await self._attempt(make_call, self.deadline_s * deadline_scale)
        finally:
            if probing:
                self._probing = False

    async def _attempt(self, make_call: Callable[[], Awaitable[T]], deadline_s: float) -> T:
        try:
            async with asyncio.timeout(deadline_s):
                result = await make_call()
        except self.refusals:
            self._answered()
            raise
        except TimeoutError as exc:
            if time.monotonic() - self._last_answer >= deadline_s / 2:  # silent, not just busy
                self._trip(f"no answer within {deadline_s:g}s")
            raise DependencyDown(self.dependency, f"no answer within {deadline_s:g}s") from exc
        except Exception as exc:
            if getattr(exc, "error_code", None) is not None:  # an HTTP answer (a 503 when shedding): alive, busy
                self._answered()
            else:  # no answer at all (connection refused or reset): down
                self._trip(f"{type(exc).__name__}: {exc}")
            raise
        self._answered()
        return result

    def _answered(self) -> None:
        self._last_answer = time.monotonic()
        self.last_error = None

    def _trip(self, error: str) -> None:
        self.last_error = error
        self._open_until = time.monotonic() + self.open_s


def guard_runner_calls(encoder: Any, index: Any, settings: Settings) -> None:
    """Give the runner clients (adapters/runner_clients.py) their deadlines; an index in this process needs none."""
    # InvalidArgument: the encoder refused this one image, which says nothing about its health.
    encoder.guard = DependencyGuard("encoder", deadline_s=settings.encoder_deadline_s, refusals=(InvalidArgument,))
    if hasattr(index, "guard"):
        index.guard = DependencyGuard("index", deadline_s=settings.index_deadline_s)
