"""Recent stage timings from every process of the deployment, for exact windowed percentiles.

Each process (API workers, runners) appends (time, stage, milliseconds) to a ring of its own, a memory-mapped
file in a directory all processes of one `bentoml serve` share (BentoML's Prometheus multiprocess directory,
which it empties at start). `/performance` reads every ring and keeps the samples of the last `window_s`
seconds, so its percentiles are exact, cover all workers, and describe recent traffic rather than all time.
A ring holds the newest `RING_SIZE` samples of its process; the report says how far back it actually reaches.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RING_SIZE = 100_000
RECORD = np.dtype([("t", "<f8"), ("stage", "S24"), ("ms", "<f4")])


def _directory() -> Path:
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = Path(shared) / "vitrine-perf" if shared else Path(tempfile.gettempdir()) / f"vitrine-perf-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


class PerfRing:
    """This process's ring; created on first use so a forked worker gets its own file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._ring: np.memmap | None = None
        self._next = 0

    def _open(self) -> np.memmap:
        if self._ring is None or self._pid != os.getpid():
            self._pid = os.getpid()
            path = _directory() / f"ring-{self._pid}.bin"
            self._ring = np.memmap(path, dtype=RECORD, mode="w+", shape=(RING_SIZE,))
            self._next = 0
        return self._ring

    def record(self, stage: str, seconds: float) -> None:
        with self._lock:
            ring = self._open()
            ring[self._next] = (time.time(), stage.encode()[:24], seconds * 1000.0)
            self._next = (self._next + 1) % RING_SIZE


RING = PerfRing()


def recent_samples(window_s: float) -> tuple[dict[str, np.ndarray], float | None]:
    """Milliseconds per stage from every process's ring over the last `window_s` seconds, and the oldest
    timestamp actually covered (None when there are no samples)."""
    since = time.time() - window_s
    chunks: list[np.ndarray] = []
    for path in _directory().glob("ring-*.bin"):
        try:
            ring = np.fromfile(path, dtype=RECORD)
        except (OSError, ValueError):
            continue  # a ring being created right now
        chunks.append(ring[ring["t"] >= since])
    if not chunks:
        return {}, None
    samples = np.concatenate(chunks)
    samples = samples[samples["t"] > 0]
    if samples.size == 0:
        return {}, None
    by_stage = {
        stage.decode(): samples["ms"][samples["stage"] == stage].astype(np.float64)
        for stage in np.unique(samples["stage"])
    }
    return by_stage, float(samples["t"].min())
