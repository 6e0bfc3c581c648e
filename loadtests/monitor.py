"""What the load runs record besides locust: CPU and memory of every process, and batch sizes from /metrics.

`ProcessSampler` samples, once a second, every process of the system under test (found from its root process:
API workers, encoder and index runners, the baseline), its redis-server, the PostgreSQL backends serving the
load-test database, and locust itself, each labelled with its role, plus the machine's CPU use and load.
`batch_histograms` reads the batch-size histograms from a /metrics text, so a phase's distribution is the
difference of two scrapes.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

# (metric, label that names the series): requests merged per batch (BentoML) and items per batch (vitrine).
BATCH_METRICS = (
    ("bentoml_service_adaptive_batch_size", "method_name"),
    ("vitrine_encoder_batch_size", "tower"),
    ("vitrine_index_batch_size", None),
)


def role_of(process: psutil.Process) -> str | None:
    try:
        cmdline = process.cmdline()
        name = process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    text = " ".join(cmdline)
    worker = ""
    if "--worker-id" in cmdline:
        worker = f"#{cmdline[cmdline.index('--worker-id') + 1]}"
    if "--service-name" in cmdline:
        service = cmdline[cmdline.index("--service-name") + 1]
        return {"TextImageEncoder": "encoder", "VectorIndexService": "index"}.get(service, "api") + worker
    if "bentoml serve" in text or ("bentoml" in text and " serve " in text):
        return "bentoml-arbiter"
    if "loadtests.baseline" in text:
        return "baseline"
    if "locust" in text:
        return "locust"
    if name.startswith("redis-server"):
        return "redis"
    if text.startswith("postgres:"):
        return "postgres"
    return name


class ProcessSampler(threading.Thread):
    def __init__(self, path: Path, *, database: str, interval: float = 1.0) -> None:
        super().__init__(name="process-sampler", daemon=True)
        self.path = path
        self.database = database
        self.interval = interval
        self.phase = "idle"
        self.roots: dict[str, int] = {}  # system label -> root pid (its descendants are sampled too)
        self._halt = threading.Event()
        self._procs: dict[int, psutil.Process] = {}

    def track(self, system: str, pid: int) -> None:
        self.roots[system] = pid

    def untrack(self, system: str) -> None:
        self.roots.pop(system, None)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def _targets(self) -> list[tuple[str, psutil.Process]]:
        found: list[tuple[str, psutil.Process]] = []
        for system, pid in list(self.roots.items()):
            try:
                root = psutil.Process(pid)
                found += [(system, p) for p in [root, *root.children(recursive=True)]]
            except psutil.NoSuchProcess:
                continue
        for process in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if cmdline.startswith("postgres:") and f" {self.database} " in cmdline:
                found.append(("postgres", process))
        return found

    def run(self) -> None:
        with self.path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["t", "phase", "system", "role", "pid", "cpu_percent", "rss_mb"])
            psutil.cpu_percent()
            while not self._halt.wait(self.interval):
                now = time.time()
                writer.writerow(
                    [f"{now:.1f}", self.phase, "machine", "all cpus", 0, psutil.cpu_percent(),
                     round(psutil.virtual_memory().used / 2**20)]
                )  # fmt: skip
                writer.writerow([f"{now:.1f}", self.phase, "machine", "load1", 0, os.getloadavg()[0] * 100, 0])
                seen: set[int] = set()
                for system, process in self._targets():
                    if process.pid in seen:
                        continue
                    seen.add(process.pid)
                    known = self._procs.setdefault(process.pid, process)
                    try:
                        cpu = known.cpu_percent()  # since this process's previous sample
                        rss = known.memory_info().rss / 2**20
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        continue
                    role = role_of(known)
                    if role is None:
                        continue
                    writer.writerow([f"{now:.1f}", self.phase, system, role, process.pid, cpu, round(rss, 1)])
                handle.flush()


def batch_histograms(metrics_text: str) -> dict[str, dict[str, Any]]:
    """{series: {"buckets": {upper bound: cumulative count}, "sum": ..., "count": ...}} for the batch-size
    histograms, summed over workers and processes."""
    found: dict[str, dict[str, Any]] = {}
    wanted = dict(BATCH_METRICS)
    for family in text_string_to_metric_families(metrics_text):
        if family.name not in wanted:
            continue
        label = wanted[family.name]
        for sample in family.samples:
            series = family.name if label is None else f"{family.name}{{{label}={sample.labels.get(label, '')}}}"
            entry = found.setdefault(series, {"buckets": defaultdict(float), "sum": 0.0, "count": 0.0})
            if sample.name.endswith("_bucket"):
                entry["buckets"][float(sample.labels["le"])] += sample.value
            elif sample.name.endswith("_sum"):
                entry["sum"] += sample.value
            elif sample.name.endswith("_count"):
                entry["count"] += sample.value
    return {series: {**entry, "buckets": dict(entry["buckets"])} for series, entry in found.items()}


def histogram_delta(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per series, a phase's batches: {"buckets": [{"le": bound, "batches": n}, ...] (not cumulative),
    "batches": count, "mean": exact mean batch size (from _sum / _count)}; series with no batches left out."""
    out: dict[str, dict[str, Any]] = {}
    for series, entry in after.items():
        previous = before.get(series, {"buckets": {}, "sum": 0.0, "count": 0.0})
        count = entry["count"] - previous["count"]
        if count <= 0:
            continue
        rows, below = [], 0.0
        for bound, cumulative in sorted(entry["buckets"].items()):
            now = cumulative - previous["buckets"].get(bound, 0.0)
            rows.append({"le": bound, "batches": round(now - below)})
            below = now
        out[series] = {"buckets": rows, "batches": round(count), "mean": (entry["sum"] - previous["sum"]) / count}
    return out
