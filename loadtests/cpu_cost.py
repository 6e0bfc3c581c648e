"""CPU milliseconds per request, per process, per kind of request: what each request costs, not how long it waited.

    .venv/bin/python loadtests/cpu_cost.py                                   # the code's defaults
    .venv/bin/python loadtests/cpu_cost.py --a INDEX_IN_PROCESS=false INDEX_IN_PROCESS=true   # A/B of a setting
    .venv/bin/python loadtests/cpu_cost.py --a-rev HEAD~1                   # A/B of a code change: A is HEAD~1

On the load run's stack (loadtests/stack.py: PostgreSQL with 100k products, its own Redis, ViT-B-32 with random
weights), each system answers the same requests of each kind, a few at a time (so batches stay small, as in the
mix; `--concurrency 50` is a bunched wave), and the CPU time (user + system, psutil) that every process of the
stack, Redis and the database's backends used meanwhile is divided by the requests answered. CPU time is what a
request costs whatever else the machine is doing, so unlike latency this figure holds on a shared, noisy box
(less so when the box is saturated: `--rounds N` serves A and B side by side and measures them in turns, A B A B
per kind, and reports medians); the encoder's forward pass and FAISS are inside their processes' figures (the
report's `encoder` and, in-process, `api` rows). The report also gives each kind's latency p50 / p95 at that
concurrency: a change can cut the waits (round trips, hops) without cutting CPU; as a latency it moves with the box.

Kinds: `search-uncached` (a new query each time, vector mode: encode + index + enrich), `search-cached` (the
same few queries again), `recommend` (feed, for users with a session), `feedback` (clicks). Written to
reports/cpu-cost/<UTC time>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loadtests import stack  # noqa: E402
from loadtests.ab import settings_of  # noqa: E402
from loadtests.monitor import role_of  # noqa: E402
from loadtests.report import table  # noqa: E402
from loadtests.workload import DistinctQueries, shopper_queries  # noqa: E402

KINDS = ("search-uncached", "search-cached", "recommend", "feedback")
CONCURRENCY = 4  # requests in flight at once: batches stay small, as in the mix; --concurrency 50 is a wave


def processes_of(root: int, redis_pid: int) -> list[psutil.Process]:
    """The stack's processes, its Redis, and the PostgreSQL backends serving the load database."""
    found = [psutil.Process(redis_pid), *psutil.Process(root).children(recursive=True)]
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if command.startswith("postgres: ") and stack.DB_NAME in command:
            found.append(process)
    return found


def cpu_seconds(processes: list[psutil.Process]) -> dict[str, float]:
    used: dict[str, float] = defaultdict(float)
    for process in processes:
        try:
            times = process.cpu_times()
            role = (role_of(process) or process.name()).split("#")[0]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        used[role] += times.user + times.system
    return used


async def drive(
    url: str, kind: str, count: int, rng: random.Random, products: list[int], concurrency: int = CONCURRENCY
) -> list[float]:
    """Send `count` requests of `kind`, `concurrency` at a time; the seconds each answered one took."""
    distinct = DistinctQueries(seed=rng.randrange(2**32))
    repeated = shopper_queries(8)
    answered: list[float] = []

    async def one(client: httpx.AsyncClient, i: int) -> None:
        started = time.perf_counter()
        if kind == "search-uncached":
            body: dict[str, Any] = {"query": next(distinct), "limit": 20, "mode": "vector"}
            response = await client.post("/api/v1/search", json=body)
        elif kind == "search-cached":
            response = await client.post("/api/v1/search", json={"query": repeated[i % len(repeated)], "limit": 20,
                                                                   "mode": "vector"})  # fmt: skip
        elif kind == "recommend":
            response = await client.post("/api/v1/recommend", json={"user_id": 1 + i % 50, "context": "feed",
                                                                     "limit": 20})  # fmt: skip
        else:
            event = {"user_id": 1 + i % 50, "product_id": rng.choice(products), "interaction_type": "click",
                     "context": "search", "position": i % 20}  # fmt: skip
            response = await client.post("/api/v1/feedback", json=event)
        if response.status_code == 200:
            answered.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for start in range(0, count, concurrency):
            await asyncio.gather(*(one(client, i) for i in range(start, min(count, start + concurrency))))
    return answered


def stage_seconds(url: str, stage: str) -> float:
    """vitrine_stage_seconds_sum for one stage, from /metrics (all processes)."""
    prefix = f'vitrine_stage_seconds_sum{{stage="{stage}"}} '
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def warm(target: stack.Stack, rng: random.Random) -> list[int]:
    """Warm every path (and fill the cached queries, sessions and profiles) before measuring; the products
    that feedback clicks on."""
    shirts = httpx.post(f"{target.url}/api/v1/search", json={"query": "shirt", "limit": 50}, timeout=60).json()
    products = [result["product_id"] for result in shirts["results"]]
    for kind in ("search-cached", "feedback", "recommend", "search-uncached"):
        asyncio.run(drive(target.url, kind, 40, rng, products))
    return products


def measure(
    target: stack.Stack,
    processes: list[psutil.Process],
    kind: str,
    count: int,
    rng: random.Random,
    products: list[int],
    concurrency: int,
) -> dict[str, float]:
    """CPU ms per answered request of `kind`, per process role."""
    before, searching = cpu_seconds(processes), stage_seconds(target.url, "index_search")
    took = asyncio.run(drive(target.url, kind, count, rng, products, concurrency))
    after, searched = cpu_seconds(processes), stage_seconds(target.url, "index_search")
    answered = len(took)
    cost = {role: 1000 * (after[role] - before.get(role, 0.0)) / max(answered, 1) for role in after}
    # The index search's own time as the API saw it: FAISS when the index is in process (it runs inline, so
    # its wall time is its CPU time), FAISS plus the hop when it is a service.
    cost["(index_search, wall)"] = 1000 * (searched - searching) / max(answered, 1)
    # How long a request took, `concurrency` at a time: a change of code can cut waits (round trips, a hop)
    # without cutting CPU.
    cost["(latency p50, ms)"] = 1000 * statistics.median(took) if took else 0.0
    cost["(latency p95, ms)"] = 1000 * statistics.quantiles(took, n=20)[18] if len(took) > 1 else 0.0
    cost["answered"] = answered
    return cost


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    roles = {role for cost in rounds for role in cost}
    return {role: float(np.median([cost.get(role, 0.0) for cost in rounds])) for role in roles}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("b", nargs="*", metavar="NAME=VALUE", help="B's settings on top of A's (none: A alone)")
    parser.add_argument("--a", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--a-rev", metavar="REV", help="A runs this git revision's code (B: this checkout's)")
    parser.add_argument("--count", type=int, default=300, help="requests of each kind")
    parser.add_argument("--model", choices=sorted(stack.MODELS), default="vit")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="requests sent together")
    parser.add_argument("--rounds", type=int, default=1, help="A B turns per kind; the report gives medians")
    args = parser.parse_args()
    systems = {"A": settings_of(args.a)}
    if args.b or args.a_rev:
        systems["B"] = {**systems["A"], **settings_of(args.b)}
    trees = {"A": stack.checkout(args.a_rev)} if args.a_rev else {}
    out = REPO / "reports" / "cpu-cost" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    stack.ensure_database(print)
    tags = stack.ensure_models(print)
    model = stack.MODELS[args.model]
    stack.ensure_index(model, tags[args.model], print)
    redis, redis_url = stack.start_redis(out / "redis")
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {label: defaultdict(list) for label in systems}
    targets: dict[str, stack.Stack] = {}
    try:
        for number, (label, settings) in enumerate(systems.items()):
            targets[label] = stack.serve_vitrine(
                f"cpu-{label}",
                model,
                tags[args.model],
                f"{redis_url.rsplit('/', 1)[0]}/{number}",  # a Redis database each: their caches stay apart
                {"API_ENABLE_CACHE": "true", **settings},
                out / "logs",
                app="service:Vitrine",
                tree=trees.get(label, stack.REPO),
            )
        stack.reset_user_state()
        rng = random.Random(7)
        products = {label: warm(target, rng) for label, target in targets.items()}
        processes = {label: processes_of(target.process.pid, redis.pid) for label, target in targets.items()}
        # Interleaved, A B A B per kind: a busy spell on the shared box hits both alike; medians over rounds.
        for _ in range(args.rounds):
            for kind in KINDS:
                for label, target in targets.items():
                    rounds[label][kind].append(
                        measure(target, processes[label], kind, args.count, rng, products[label], args.concurrency)
                    )
    finally:
        for target in targets.values():
            target.stop()
        redis.stop()
    results = {label: {kind: median_of(found) for kind, found in kinds.items()} for label, kinds in rounds.items()}
    lines = [f"# CPU ms per request ({model.label}, {args.concurrency} at a time, median of {args.rounds} rounds)", ""]
    for label, settings in systems.items():
        code = f"the code of {args.a_rev}" if label in trees else "this checkout's code"
        lines.append(f"- {label}: {code}, {settings or 'the default settings'}")
    lines.append("")
    for kind in KINDS:
        timings = ("(index_search, wall)", "(latency p50, ms)", "(latency p95, ms)")
        extra = ("answered", *timings)
        roles = sorted({role for label in results for role in results[label][kind] if role not in extra})
        rows = []
        for role in roles:
            rows.append([role, *(f"{results[label][kind].get(role, 0.0):.2f}" for label in results)])
        rows.append(["total", *(f"{sum(v for r, v in results[label][kind].items() if r not in extra):.2f}"
                                for label in results)])  # fmt: skip
        for timing in timings:
            rows.append([timing, *(f"{results[label][kind][timing]:.2f}" for label in results)])
        rows.append(["answered", *(f"{results[label][kind]['answered']:.0f}" for label in results)])
        lines += [f"## {kind}", "", table(["process", *results], rows), ""]
    path = out.with_suffix(".md")
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
