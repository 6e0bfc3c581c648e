"""What the API knows of its runners and dependencies: one `RunnerState` every client reads, `/ready`, `/status`.

The encoder is asked for its facts (model tag, towers, device) and the index for its own (version, size,
model tag) quickly at start, then every `poll_every_s` once both answered, and on demand for /status. An
in-process index (INDEX_IN_PROCESS) answers from the worker's own memory.

Components polls as often as the index looks for a new version (INDEX_RELOAD_INTERVAL_S). The index version is
in every search page's cache key, and a worker that served only cached pages would otherwise go on reading the
previous index's pages after a swap, for as long as it did not ask; this way each worker follows a swap within
two intervals. An ask is two cheap internal calls.

The model tag names the vector space that cache keys, sessions and profiles are kept in. It is the index's
model tag when the index is loaded (product vectors come from it; query vectors must match it), else the
encoder's; until either is known no key can be built, and the request is a retryable 503 rather than a key
under a guessed tag that another deployment could read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from adapters.cache import Cache
from adapters.metrics import INDEX_VERSION
from domain.errors import DependencyDown

log = logging.getLogger("vitrine.health")

FIRST_POLL_S = 0.5  # while the runners load their model and index


class InfoSource(Protocol):
    async def info(self) -> dict[str, Any]: ...


@dataclass
class RunnerState:
    """The runners' last answers to `info()`, refreshed in the background."""

    encoder: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)
    encoder_error: str | None = None
    index_error: str | None = None

    @property
    def known_model_tag(self) -> str | None:
        tag = self.index.get("model_tag") or self.encoder.get("model_tag")
        return str(tag) if tag else None

    def model_tag(self) -> str:
        """The vector space's tag, for cache keys; a retryable 503 until a runner has said it."""
        tag = self.known_model_tag
        if tag is None:
            raise DependencyDown("encoder", "starting: the model is not known yet")
        return tag

    @property
    def encoder_model_tag(self) -> str | None:
        tag = self.encoder.get("model_tag")
        return str(tag) if tag else None

    @property
    def has_image_tower(self) -> bool:
        return bool(self.encoder.get("has_image_tower", False))

    @property
    def ready(self) -> bool:
        return bool(self.encoder) and bool(self.index.get("loaded"))


class Health:
    def __init__(
        self,
        runners: RunnerState,
        *,
        encoder: InfoSource,
        index: InfoSource,
        cache: Cache,
        database_check: Callable[[], Awaitable[dict[str, Any]]],
        schema_check: Callable[[], Awaitable[tuple[bool, str]]],
        poll_every_s: float,
    ) -> None:
        self.runners = runners
        self.poll_every_s = poll_every_s
        self._schema_check = schema_check
        self._encoder = encoder
        self._index = index
        self._cache = cache
        self._database_check = database_check
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="vitrine-poll-runners")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh(self) -> None:
        try:
            self.runners.encoder = await self._encoder.info()
            self.runners.encoder_error = None
        except Exception as exc:
            self.runners.encoder_error = f"{type(exc).__name__}: {exc}"
        try:
            previous = self.runners.index.get("version")
            self.runners.index = await self._index.info()
            self.runners.index_error = None
            if self.runners.index.get("version") != previous:
                INDEX_VERSION.labels(
                    version=str(self.runners.index.get("version")), model=str(self.runners.index.get("model_tag"))
                ).set(1)
        except DependencyDown as exc:
            self.runners.index_error = exc.message

    async def _poll(self) -> None:
        # Fast at first (the runners load their model and index while the API starts), then every poll_every_s.
        while True:
            await self.refresh()
            await asyncio.sleep(self.poll_every_s if self.runners.ready else FIRST_POLL_S)

    async def cache_check(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(1.0):
                latency = await self._cache.ping()
        except Exception as exc:
            return {"state": "down", "backend": self._cache.backend, "error": f"{type(exc).__name__}: {exc}"}
        return {"state": "up", "backend": self._cache.backend, "latency_ms": latency}

    async def readiness(self) -> dict[str, Any]:
        database = await self._database_check()
        schema_ok, schema = False, "the database is down"
        if database["state"] == "up":
            schema_ok, schema = await self._schema_check()
        checks = {
            "model_loaded": bool(self.runners.encoder),
            "index_loaded": bool(self.runners.index.get("loaded")),
            "database": database["state"] == "up",
            "database_schema": schema_ok,
        }
        return {"ready": all(checks.values()), "checks": checks, "database_schema": schema}

    async def status(self, *, cache_enabled: bool) -> dict[str, Any]:
        await self.refresh()
        database, cache = await asyncio.gather(self._database_check(), self.cache_check())
        encoder = {"state": "up" if self.runners.encoder else "down", **self.runners.encoder}
        if self.runners.encoder_error:
            encoder["error"] = self.runners.encoder_error
        index = {"state": "up" if self.runners.index.get("loaded") else "down", **self.runners.index}
        if self.runners.index_error:
            index["error"] = self.runners.index_error
        essential_down = any(part["state"] != "up" for part in (database, encoder, index))
        overall = "unhealthy" if essential_down else ("degraded" if cache["state"] != "up" else "ok")
        return {
            "status": overall,
            "database": database,
            "cache": cache,
            "encoder": encoder,
            "index": index,
            "model_version": self.runners.encoder_model_tag or "unknown",
            "index_version": self.runners.index.get("version"),
            "cache_enabled": cache_enabled,
        }
