"""A deadline and a breaker for calls to a runner, so a runner that died costs a request at most one deadline.

A runner killed mid-flight does not refuse connections: its socket is held by the supervisor while a new
worker loads, so a call would wait out the whole reload (15 s measured for the encoder). Each call gets
`deadline_s`. A call that fails opens the breaker, and while it is open every call fails at once without touching
the runner. Whether the runner is back is found out by a probe in the background (its `info()`, every
`probe_every_s`, under the same deadline), not by a shopper's request: a request used as the probe would wait out
the deadline each time while the runner reloads. The breaker closes as soon as the probe is answered. A call that
misses its deadline opens it only when nothing has come back from the runner for half a deadline: a runner that is
merely busy (a burst, a loaded machine) keeps answering other calls, and only the slow call gives up.
Failures are `DependencyDown` (503, retryable), which the search pipeline answers from its keyword leg when the
encoder is the one down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bentoml.exceptions import InvalidArgument

from domain.errors import DependencyDown, VitrineError
from domain.settings import Settings

T = TypeVar("T")

PROBE_EVERY_S = 0.25


class DependencyGuard:
    def __init__(
        self,
        dependency: str,
        *,
        deadline_s: float | None,
        probe: Callable[[], Awaitable[object]] | None = None,
        probe_every_s: float = PROBE_EVERY_S,
        refusals: tuple[type[BaseException], ...] = (),
    ) -> None:
        if deadline_s is not None and probe is None:
            raise ValueError("a guard with a deadline needs a probe to find out when the runner is back")
        self.dependency = dependency
        # Errors that mean the runner answered (a refusal of this request), not that it is down.
        self.refusals: tuple[type[BaseException], ...] = (VitrineError, *refusals)
        self.deadline_s = deadline_s
        self._probe = probe
        self.probe_every_s = probe_every_s
        self._prober: asyncio.Task[None] | None = None
        self._last_answer = time.monotonic()
        self.last_error: str | None = None  # set while the breaker is open

    @property
    def is_open(self) -> bool:
        return self.last_error is not None

    async def call(self, make_call: Callable[[], Awaitable[T]], *, deadline_scale: float = 1.0) -> T:
        """`deadline_scale` stretches the deadline for calls that are slow by nature (an image to encode)."""
        if self.deadline_s is None:
            return await make_call()
        if self.is_open:
            raise DependencyDown(self.dependency, f"not answering (last: {self.last_error}); retrying shortly")
        try:
            async with asyncio.timeout(self.deadline_s * deadline_scale):
                result = await make_call()
        except self.refusals:
            self._answered()
            raise
        except TimeoutError as exc:
            if time.monotonic() - self._last_answer >= self.deadline_s * deadline_scale / 2:  # silent, not busy
                self._trip(f"no answer within {self.deadline_s * deadline_scale:g}s")
            raise DependencyDown(self.dependency, f"no answer within {self.deadline_s * deadline_scale:g}s") from exc
        except Exception as exc:
            if getattr(exc, "error_code", None) is not None:  # an HTTP answer (a 503 when shedding): alive, busy
                self._answered()
            else:  # no answer at all (connection refused or reset): down
                self._trip(f"{type(exc).__name__}: {exc}")
            raise
        self._answered()
        return result

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober

    def _answered(self) -> None:
        self._last_answer = time.monotonic()
        self.last_error = None

    def _trip(self, error: str) -> None:
        self.last_error = error
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe_until_answered(), name=f"vitrine-probe-{self.dependency}")

    async def _probe_until_answered(self) -> None:
        assert self._probe is not None and self.deadline_s is not None  # a guard without a deadline never trips
        while self.is_open:
            await asyncio.sleep(self.probe_every_s)
            try:
                async with asyncio.timeout(self.deadline_s):
                    await self._probe()
            except self.refusals:
                self._answered()
            except Exception as exc:  # still down: the breaker stays open, with the latest reason
                self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                self._answered()


def guard_runner_calls(encoder: Any, index: Any, settings: Settings) -> None:
    """Give the runner clients (adapters/runner_clients.py) their deadlines; an index in this process needs none."""
    # InvalidArgument: the encoder refused this one image, which says nothing about its health.
    encoder.guard = DependencyGuard(
        "encoder", deadline_s=settings.encoder_deadline_s, probe=encoder.ping, refusals=(InvalidArgument,)
    )
    if hasattr(index, "guard"):
        index.guard = DependencyGuard("index", deadline_s=settings.index_deadline_s, probe=index.ping)
