"""The index version root/CURRENT names, loaded and swapped live: one holder for both topologies.

The index service (runners/index_service.py) holds one of these; with INDEX_IN_PROCESS each API worker holds
its own (adapters/local_index.py). Either way the rules are the same:

- Every `reload_interval_s` a background task reads root/CURRENT; when it names another version (newer, or an
  older one after a rollback), that version is loaded in a worker thread and then one attribute is rebound.
  A caller reads `current` once per search (or batch), so searches in flight finish on the index they
  started with, and the old one is freed when the last of them returns.
- A version that fails to load is logged, reported by `error`, and left alone (retried once CURRENT
  changes); the holder keeps answering from the loaded one.
- Until any version exists, `current` is None and `error` says why.

Versions are memory-mapped (runners/vector_index.py), so API workers on one machine share the pages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

if TYPE_CHECKING:
    from runners.vector_index import VectorIndex

logger = logging.getLogger("vitrine.index")

RELOADS = Counter("vitrine_index_reloads", "Index versions loaded by the watcher, by outcome.", ["outcome"])


class LiveIndex:
    def __init__(self, root: Path, *, reload_interval_s: float) -> None:
        self.root = root
        self.reload_interval_s = reload_interval_s
        self.current: VectorIndex | None = None
        self.error: str | None = None
        self._failed_version: str | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def version(self) -> str | None:
        return self.current.version if self.current is not None else None

    def reload(self) -> bool:
        """Load the version CURRENT names if it is not the one loaded; True when a new one was swapped in."""
        from runners.vector_index import VectorIndex, current_version

        version = current_version(self.root)
        if version is None:
            if self.current is None:
                self.error = f"no index under {self.root} yet: run `vitrine index build`"
            return False
        if version in (self.version, self._failed_version):
            return False  # loaded already, or failed and reported: retried when CURRENT changes
        started = time.perf_counter()
        try:
            loaded = VectorIndex.load(self.root / version)
            loaded.warm()
        except Exception as exc:
            self._failed_version = version
            self.error = f"index version {version} failed to load: {type(exc).__name__}: {exc}"
            logger.exception("index version %s failed to load; keeping %s", version, self.version)
            RELOADS.labels(outcome="failed").inc()
            return False
        previous = self.version
        self.current = loaded  # the swap: one reference; searches in flight keep the object they read
        self.error = None
        self._failed_version = None
        RELOADS.labels(outcome="loaded").inc()
        logger.info(
            "index version %s loaded in %.2fs (%d products, %s, model %s); was %s",
            version,
            time.perf_counter() - started,
            loaded.size,
            loaded.kind,
            loaded.model_tag,
            previous,
        )
        return True

    def start_watching(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="index-watcher")

    async def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval_s)
            try:
                await asyncio.to_thread(self.reload)  # loading reads files: keep it off the event loop
            except Exception:  # the watcher must outlive any one bad version
                logger.exception("index watcher: reload failed")

    def info(self) -> dict[str, Any]:
        index = self.current
        facts: dict[str, Any] = {"loaded": index is not None, "path": str(self.root), "error": self.error}
        if index is None:
            return {**facts, "version": None, "model_tag": None, "size": 0, "dim": None, "kind": None}
        return {
            **facts,
            "version": index.version,
            "model_tag": index.model_tag,
            "size": index.size,
            "dim": index.dim,
            "kind": index.kind,
            "ef_search": index.tuning.ef_search if index.kind == "hnsw" else None,
            "created_at": index.manifest.created_at,
        }
