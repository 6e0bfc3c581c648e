"""A/B two settings of vitrine on the shop's mix, interleaved, on the load run's stack (loadtests/README.md).

    .venv/bin/python loadtests/ab.py API_WORKERS=2                         # B = A + these settings
    .venv/bin/python loadtests/ab.py --a ENCODER_WORKERS=1 ENCODER_WORKERS=2 --rounds 3 --seconds 40
    .venv/bin/python loadtests/ab.py --a-rev HEAD --rounds 3             # A: HEAD's code, B: this checkout's

Both systems are up side by side (the same database, each with a Redis database of its own) and
get the same mix in turns, A B A B ..., so a busy spell on the shared box hits both alike. Prints p50/p95 per
request kind and system, over all rounds after each round's first 10 s, and writes the request logs to
reports/ab/<UTC time>/. For tuning; `make loadtest` is the run of record.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from domain.settings import Settings  # noqa: E402
from loadtests import stack  # noqa: E402
from loadtests.monitor import ProcessSampler  # noqa: E402
from loadtests.report import Requests, table  # noqa: E402
from loadtests.run import FULL, MIX_RATE, VITRINE_SETTINGS, Run  # noqa: E402

WARMUP_S = 10.0
STAGES = ("search", "recommend", "feedback", "encode_query", "index_search", "enrich", "keyword_search",
          "recommend_components")  # fmt: skip


def settings_of(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name == "PYTHONPATH":  # the A/B of an installed library (loadtests/stock_asyncio); empty: none
            found[name] = value
            continue
        if not name or not value:
            raise SystemExit(f"settings are NAME=VALUE, got {pair!r}")
        known = {field.alias or key for key, field in Settings.model_fields.items()}
        if name.lower() not in {known_name.lower() for known_name in known}:  # else ignored: A would equal B
            raise SystemExit(f"{name} is not a vitrine setting (domain/settings.py)")
        found[name] = value
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("b", nargs="*", metavar="NAME=VALUE", help="B's settings on top of A's")
    parser.add_argument("--a", nargs="*", default=[], metavar="NAME=VALUE", help="A's settings on top of the run's")
    parser.add_argument("--a-rev", metavar="REV", help="A runs this git revision's code (B: this checkout's)")
    parser.add_argument("--model", choices=sorted(stack.MODELS), default="vit")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=45.0, help="per turn, the first 10 s not counted")
    parser.add_argument("--rate", type=float, default=MIX_RATE)
    parser.add_argument("--search-mode", default="vector", help="vector, or hybrid (the server's default)")
    parser.add_argument("--arrivals", choices=("poisson", "bunched"), default="poisson",
                        help="bunched: every user at once, once a second (loadtests/locustfile.py)")  # fmt: skip
    args = parser.parse_args()
    if not args.b and not args.a_rev:
        parser.error("B needs settings of its own, or --a-rev: else A and B are the same system")
    trees = {"A": stack.checkout(args.a_rev)} if args.a_rev else {}
    a = {**VITRINE_SETTINGS, "API_ENABLE_CACHE": "true", **settings_of(args.a)}
    b = {**a, **settings_of(args.b)}
    out = REPO / "reports" / "ab" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "logs").mkdir(parents=True)
    sampler = ProcessSampler(out / "processes.csv", database=stack.DB_NAME)
    sampler.start()
    run = Run(out, FULL, sampler)
    stack.ensure_database(run.log)
    tags = stack.ensure_models(run.log)
    model, tag = stack.MODELS[args.model], tags[args.model]
    stack.ensure_index(model, tag, run.log)
    redis, redis_url = stack.start_redis(out / "redis")
    systems = []
    try:
        for label, settings in (("A", a), ("B", b)):
            url = f"{redis_url.rsplit('/', 1)[0]}/{len(systems)}"
            served = stack.serve_vitrine(f"vitrine-{label}", model, tag, url, settings, out / "logs",
                                         app="service:Vitrine", tree=trees.get(label, stack.REPO))  # fmt: skip
            systems.append((label, served))
            sampler.track(f"vitrine-{label}", systems[-1][1].process.pid)
        mix = ["--workload", "mix", "--shape", "steady", "--rate", f"{args.rate:g}", "--warmup-s", f"{WARMUP_S:g}",
               "--duration", f"{args.seconds - WARMUP_S:g}", "--search-mode", args.search_mode,
               "--arrivals", args.arrivals]  # fmt: skip
        if args.arrivals == "bunched":
            mix += ["--per-user-rate", "1"]
        for round_ in range(args.rounds):
            for label, target in systems:
                stack.reset_user_state()
                run.locust(f"{label}-{round_}", target, args.model, mix, budget_s=args.seconds)
    finally:
        for _, target in systems:
            target.stop()
        redis.stop()
        sampler.stop()
        run.save({"a": a, "b": b})
    rows = []
    for label in ("A", "B"):
        logs = [Requests.load(out / "requests" / f"{label}-{r}.csv") for r in range(args.rounds)]
        kept = [log.select(log.t >= log.t.min() + WARMUP_S) for log in logs if log.t.size]
        names = sorted({str(name) for log in kept for name in log.name})
        for name in names:
            ms = np.concatenate([log.ms[(log.name == name) & log.ok] for log in kept])
            failed = sum(int(((log.name == name) & ~log.ok).sum()) for log in kept)
            p50, p95 = np.percentile(ms, [50, 95]) if ms.size else (float("nan"), float("nan"))
            rows.append([label, name, ms.size, failed, f"{p50:.1f}", f"{p95:.1f}"])
    stage_rows = []
    for phase in run.phases:
        operations = (phase.get("performance") or {}).get("operations") or {}
        for stage in STAGES:
            if stage in operations:
                found = operations[stage]
                stage_rows.append([phase["name"], stage, found["count"], f"{found['p50_ms']:.1f}",
                                   f"{found['p95_ms']:.1f}"])  # fmt: skip
    print(table(["turn", "stage (server side)", "count", "p50 ms", "p95 ms"], stage_rows) + "\n")
    if args.a_rev:
        a = {"code": f"{args.a_rev} (B: this checkout's)", **a}
    print(f"A: {a}\nB: {b}\n")
    print(table(["system", "request", "ok", "failed", "p50 ms", "p95 ms"], rows))
    (out / "summary.md").write_text(f"A: {a}\n\nB: {b}\n\n" + table(["system", "request", "ok", "failed", "p50 ms",
                                                                       "p95 ms"], rows) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
