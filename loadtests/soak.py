"""`make soak`: the shop's mix at a steady rate for a long time, watching for anything that grows.

    .venv/bin/python loadtests/soak.py                       # 30 min at 30 requests/s, 5 min of it warm-up
    .venv/bin/python loadtests/soak.py --minutes 10 --rate 20 --model vit
    .venv/bin/python loadtests/soak.py --out DIR              # default reports/soak/<UTC time>

On the load stack (loadtests/stack.py: a database of >= 100k products, `vitrine_soak` by default, a private Redis,
`bentoml serve service:Vitrine` with caching on), locust runs the mix (loadtests/locustfile.py: search,
recommend, feedback) for the whole time. Every 10 s the soak records, per process of the stack (API workers,
encoder and index runners, the arbiter, redis-server): RSS and open file descriptors; and the database
connections of the load-test database, Redis's used memory and its keys without a TTL. Redis runs with a
`maxmemory` and LRU eviction, as docs/scaling.md tells production to (see REDIS_MAXMEMORY_MB).

Passes when there were no failed requests and, after the warm-up, nothing grew by 10% or more: each series is
compared as the median of the first two minutes after warm-up against the median of the last two. The report
(soak.md, beside samples.csv and locust's CSVs) is also copied to loadtests/SOAK.md.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loadtests import stack  # noqa: E402
from loadtests.monitor import role_of  # noqa: E402

SAMPLE_EVERY_S = 10.0
WINDOW_S = 120.0  # each end of the comparison: the median over this long
MAX_GROWTH = 0.10
SETTINGS = {"ENCODER_WORKERS": "2"}  # as the load runs' mix (loadtests/run.py VITRINE_SETTINGS)
# Redis as docs/scaling.md tells production to run it, with a bound small enough that the mix's caches (query
# vectors live 2 h, product rows 1 h) fill it within the warm-up: without one, a cache whose TTLs outlast the
# soak grows all along, as it should, and its growth says nothing of a leak. Keys without a TTL are counted apart.
REDIS_MAXMEMORY_MB = 24


class Sampler(threading.Thread):
    def __init__(self, path: Path, roots: dict[str, int], redis_url: str) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.path, self.roots, self.redis_url = path, roots, redis_url
        self.rows: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        import redis

        store = redis.Redis.from_url(self.redis_url)
        started = time.time()
        while not self._halt.is_set():
            now = time.time() - started
            for system, pid in self.roots.items():
                try:
                    root = psutil.Process(pid)
                    processes = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for process in processes:
                    try:
                        role = role_of(process) or process.name()
                        self.rows.append(
                            {"t": now, "series": f"{system}/{role}/rss_mb", "value": process.memory_info().rss / 2**20}
                        )
                        self.rows.append({"t": now, "series": f"{system}/{role}/fds", "value": process.num_fds()})
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        continue
            connections = stack.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", stack.DB_NAME)
            self.rows.append({"t": now, "series": "postgres/connections", "value": connections[0][0]})
            self.rows.append(
                {"t": now, "series": "redis/used_memory_mb", "value": store.info("memory")["used_memory"] / 2**20}
            )
            self.rows.append({"t": now, "series": "redis/keys", "value": store.dbsize()})
            # Every cached value has a TTL; a key without one that keeps growing in number is a leak that
            # eviction at maxmemory would hide.
            keyspace = store.info("keyspace").get("db0", {})
            lasting = keyspace.get("keys", 0) - keyspace.get("expires", 0)
            self.rows.append({"t": now, "series": "redis/keys_without_ttl", "value": lasting})
            self._halt.wait(SAMPLE_EVERY_S)
        store.close()
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["t", "series", "value"])
            writer.writeheader()
            writer.writerows(self.rows)


def growth(rows: list[dict[str, Any]], *, warmup_s: float, end_s: float) -> list[dict[str, Any]]:
    """Per series: the median of the first WINDOW_S after warm-up, of the last WINDOW_S, and the growth."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        series.setdefault(row["series"], []).append((row["t"], float(row["value"])))
    table = []
    for name, points in sorted(series.items()):
        first = [v for t, v in points if warmup_s <= t < warmup_s + WINDOW_S]
        last = [v for t, v in points if end_s - WINDOW_S <= t <= end_s]
        if not first or not last:
            continue
        start, end = statistics.median(first), statistics.median(last)
        change = (end - start) / start if start else (0.0 if end == 0 else float("inf"))
        table.append({"series": name, "after_warmup": start, "end": end, "growth": change})
    return table


def locust_totals(csv_prefix: Path) -> dict[str, Any]:
    with Path(f"{csv_prefix}_stats.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    total = next(row for row in rows if row["Name"] == "Aggregated")
    return {
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p95_ms": float(total["95%"]),
        "p99_ms": float(total["99%"]),
        "by_name": {
            row["Name"]: (int(row["Request Count"]), int(row["Failure Count"]))
            for row in rows
            if row["Name"] != "Aggregated"
        },
    }


def report(out: Path, args: argparse.Namespace, meta: dict[str, Any], totals: dict[str, Any],
           table: list[dict[str, Any]]) -> bool:  # fmt: skip
    grown = [row for row in table if row["growth"] >= MAX_GROWTH and not row["series"].endswith("redis/keys")]
    passed = totals["failures"] == 0 and not grown
    lines = [
        f"# Soak: {'PASS' if passed else 'FAIL'}",
        "",
        f"{args.minutes:g} min of the shop's mix at {args.rate:g} requests/s ({args.model}), "
        f"{args.warmup_min:g} min of it warm-up; {meta['started']} to {meta['ended']} UTC, on the shared 2-core "
        "machine. Growth: median of the first 2 min after warm-up against the median of the last 2 min.",
        "",
        f"- requests: {totals['requests']:,} ({totals['rps']:.1f}/s), failures: {totals['failures']}",
        f"- latency: p50 {totals['p50_ms']:.0f} ms, p95 {totals['p95_ms']:.0f} ms, p99 {totals['p99_ms']:.0f} ms",
        f"- per request type (requests, failures): {totals['by_name']}",
        f"- catalog: {meta['catalog']}; model {meta['model']}; index {meta['index']}",
        "",
        "| series | after warm-up | end | growth |",
        "|---|---:|---:|---:|",
    ]
    for row in table:
        flag = " **over 10%**" if row in grown else ""
        lines.append(f"| {row['series']} | {row['after_warmup']:.1f} | {row['end']:.1f} | {row['growth']:+.1%}{flag} |")
    lines += [
        "",
        "`redis/keys` is listed for context and not judged: the cache fills towards its TTL-bounded working set.",
        "Series of a process that was replaced during the run (a restarted worker) start afresh under its new pid.",
    ]
    (out / "soak.md").write_text("\n".join(lines) + "\n")
    shutil.copyfile(out / "soak.md", REPO / "loadtests" / "SOAK.md")
    return passed


def use_database(name: str) -> None:
    """Point the load stack (loadtests/stack.py) at a database of the soak's own, so a soak never empties the
    interactions of a load run going on at the same time in `vitrine_loadtest`."""
    stack.DB_NAME = name  # read at call time by database_url() and ensure_database()
    shared_sql = stack.sql

    def sql(statement: str, *args: Any, database: str = name) -> list[Any]:
        return shared_sql(statement, *args, database=database)

    stack.sql = sql  # product_counts() and reset_user_state() call it without a database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-min", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--model", choices=sorted(stack.MODELS), default="minilm")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--database", default="vitrine_soak", help="its own copy of the load stack's catalog")
    parser.add_argument("--prepare-only", action="store_true", help="make the database, models and index; no run")
    args = parser.parse_args()
    use_database(args.database)
    out = args.out or REPO / "reports" / "soak" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "logs").mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)

    meta: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "model": args.model}
    meta["catalog"] = stack.ensure_database(log)
    tags = stack.ensure_models(log)
    model, tag = stack.MODELS[args.model], tags[args.model]
    meta["index"] = stack.ensure_index(model, tag, log)
    if args.prepare_only:
        log(f"prepared: {meta}")
        return 0
    stack.reset_user_state()
    redis, redis_url = stack.start_redis(out / "redis", maxmemory_mb=REDIS_MAXMEMORY_MB)
    served = None
    sampler = None
    try:
        served = stack.serve_vitrine(
            "vitrine-soak", model, tag, redis_url, SETTINGS, out / "logs", app="service:Vitrine"
        )
        sampler = Sampler(out / "samples.csv", {"vitrine": served.process.pid, "redis": redis.pid}, redis_url)
        sampler.start()
        seconds = args.minutes * 60
        log(f"soak: {args.minutes:g} min at {args.rate:g}/s against {served.url}")
        argv = [
            str(stack.BIN / "locust"), "-f", str(REPO / "loadtests" / "locustfile.py"), "--headless",
            "--host", served.url, "--csv", str(out / "locust"), "--loglevel", "WARNING",
            "--exit-code-on-error", "0", "--stop-timeout", "10", "--workload", "mix", "--shape", "steady",
            "--rate", f"{args.rate:g}", "--warmup-s", "0", "--duration", f"{seconds:g}",
        ]  # fmt: skip
        locust = stack.Process("locust-soak", argv, stack.base_env(), out / "logs" / "locust.log").start()
        assert locust.popen is not None
        locust.popen.wait(timeout=seconds + 300)
    finally:
        if sampler is not None:
            sampler.stop()
        if served is not None:
            served.stop()
        redis.stop()
    meta["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
    totals = locust_totals(out / "locust")
    table = growth(sampler.rows if sampler else [], warmup_s=args.warmup_min * 60, end_s=args.minutes * 60)
    passed = report(out, args, meta, totals, table)
    log(f"soak {'passed' if passed else 'FAILED'}: {out / 'soak.md'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
