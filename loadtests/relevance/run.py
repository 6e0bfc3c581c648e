"""The relevance benchmark of record: every query of queries.tsv, in every mode, through POST /api/v1/search.

    .venv/bin/python loadtests/relevance/run.py                      # starts a private stack (serve_fashion.sh)
    .venv/bin/python loadtests/relevance/run.py --url http://127.0.0.1:3000 --api-key KEY

Scores NDCG@10 and recall@50 per split (dev, test, fresh) and mode (keyword, vector, hybrid) with the
judgements of judge.py, measures server-side latency (`took_ms`) of uncached searches per mode, checks which
mode the server uses by default, and writes a markdown report (reports/relevance.md, plus the raw answers in
reports/relevance.json). Latency is measured twice per round: with the search and query-embedding caches
cleared (DELETE /cache) before every search, so each one encodes its query, and with only the search cache
cleared, so the query vector comes from the cache; answers that still say `cached` are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import judge

MODES = ("keyword", "vector", "hybrid")
SPLITS = ("dev", "test", "fresh", "hard-tune", "hard-frozen")
LIMIT = 50
FAILURE_NDCG = 0.8
REPORTS = judge.REPO / "reports"


@dataclass
class Answer:
    ids: list[int]
    took_ms: float
    cached: bool
    interpretation: dict[str, Any] | None
    mode: str


@dataclass
class Timings:
    """Server-side took_ms per mode, and hybrid - vector for the same query in the same round."""

    by_mode: dict[str, list[float]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    paired: list[float] = field(default_factory=list)


@dataclass
class Run:
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)  # (query, mode) -> first answer
    cold: Timings = field(default_factory=lambda: Timings())
    warm: Timings = field(default_factory=lambda: Timings())
    load: list[float] = field(default_factory=list)  # 1-minute load average, before and after
    default_mode: str = "?"
    status: dict[str, Any] = field(default_factory=dict)


def search(client: httpx.Client, query: str, mode: str | None) -> Answer:
    body: dict[str, Any] = {"query": query, "limit": LIMIT}
    if mode is not None:
        body["mode"] = mode
    response = client.post("/api/v1/search", json=body)
    response.raise_for_status()
    data = response.json()
    return Answer(
        ids=[int(result["product_id"]) for result in data["results"]],
        took_ms=float(data["took_ms"]),
        cached=bool(data["cached"]),
        interpretation=data.get("interpretation"),
        mode=str(data.get("mode")),
    )


def clear_caches(client: httpx.Client, kinds: Sequence[str] = ("search", "qemb")) -> None:
    for kind in kinds:
        client.delete("/cache", params={"kind": kind})  # best effort: a stack without caching has nothing


def benchmark(client: httpx.Client, queries: Sequence[judge.Query], *, rounds: int) -> Run:
    run = Run()
    run.status = client.get("/status").json()
    run.default_mode = search(client, "warm up the stack", None).mode
    for query in queries[:10]:  # warm every leg once (vocabulary, prepared statements, encoder)
        for mode in MODES:
            search(client, query.text, mode)
    run.load.append(os.getloadavg()[0])
    for round_number in range(rounds):
        # Cold: the query-embedding cache is cleared too, so every search encodes its query. Warm: only results
        # are cleared, so the query vector comes from the cache (a popular query whose page is not cached).
        for kinds, timings in ((("search", "qemb"), run.cold), (("search",), run.warm)):
            for position, query in enumerate(queries):
                # Rotate the order of the modes, so no mode always runs right after another one's work.
                shift = (position + round_number) % len(MODES)
                took: dict[str, float] = {}
                if timings is run.warm:
                    search(client, query.text, "vector")  # untimed: puts the query vector in the cache
                for mode in MODES[shift:] + MODES[:shift]:
                    clear_caches(client, kinds)
                    answer = search(client, query.text, mode)
                    run.answers.setdefault((query.text, mode), answer)
                    if not answer.cached:
                        timings.by_mode[mode].append(answer.took_ms)
                        took[mode] = answer.took_ms
                if "hybrid" in took and "vector" in took:
                    timings.paired.append(took["hybrid"] - took["vector"])
    run.load.append(os.getloadavg()[0])
    return run


# --- report -------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def scores(
    run: Run, queries: Sequence[judge.Query], catalog: Mapping[int, judge.Product]
) -> dict[tuple[str, str], dict[str, float]]:
    per_query: dict[tuple[str, str], dict[str, float]] = {}
    for query in queries:
        judged = judge.grades(query, catalog)
        for mode in MODES:
            ranked = run.answers[(query.text, mode)].ids
            per_query[(query.text, mode)] = {
                "ndcg": judge.ndcg_at(ranked, judged),
                "recall": judge.recall_at(ranked, judged),
            }
    return per_query


def report(
    run: Run,
    queries: Sequence[judge.Query],
    catalog: Mapping[int, judge.Product],
    *,
    url: str,
) -> str:
    per_query = scores(run, queries, catalog)
    lines = [
        "# Relevance benchmark",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {url}, commit {_commit()}, "
        f"database {run.status.get('database', {}).get('backend', '?')}, model {run.status.get('model_version')}, "
        f"index {run.status.get('index_version')}. Default mode (no `mode` in the request): **{run.default_mode}**.",
        "",
        f"{len(queries)} queries (loadtests/relevance/queries.tsv) over the fashion catalog, judged from its own",
        "attributes (judge.py: 2 = article type and every stated colour / audience / brand, 1 = type only or a",
        "related type, 0 = other or outside a stated price). NDCG@10 (gain 2^g - 1) and recall@50 (of products",
        "graded >= 1, capped at 50), through POST /api/v1/search with `limit` 50.",
        "",
        "| split | queries | mode | NDCG@10 | recall@50 |",
        "|---|---:|---|---:|---:|",
    ]
    for split in (*SPLITS, "all"):
        chosen = [q for q in queries if split == "all" or q.split == split]
        if not chosen:
            continue
        for mode in MODES:
            rows = [per_query[(q.text, mode)] for q in chosen]
            lines.append(
                f"| {split} | {len(chosen)} | {mode} | {statistics.fmean(r['ndcg'] for r in rows):.3f} "
                f"| {statistics.fmean(r['recall'] for r in rows):.3f} |"
            )
    for title, timings in (("query encoded every time", run.cold), ("query vector from the cache", run.warm)):
        lines += [
            "",
            f"## Latency, uncached searches, {title} (server `took_ms`, one request at a time)",
            "",
            "| mode | searches | p50 ms | p95 ms | p99 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for mode in MODES:
            values = timings.by_mode[mode]
            lines.append(
                f"| {mode} | {len(values)} | {percentile(values, 0.5):.1f} | {percentile(values, 0.95):.1f} "
                f"| {percentile(values, 0.99):.1f} |"
            )
        delta = percentile(timings.by_mode["hybrid"], 0.95) - percentile(timings.by_mode["vector"], 0.95)
        lines += [
            "",
            f"hybrid p95 - vector p95: {delta:+.1f} ms. Paired (hybrid - vector, same query, same round): median "
            f"{percentile(timings.paired, 0.5):+.1f} ms, p95 {percentile(timings.paired, 0.95):+.1f} ms.",
        ]
    lines += [
        "",
        f"Machine load (1-minute average): {run.load[0]:.1f} before, {run.load[-1]:.1f} after; {os.cpu_count()} CPUs.",
        "",
    ]

    lines += [
        f"## Queries where hybrid NDCG@10 < {FAILURE_NDCG}",
        "",
        "| split | query | keyword | vector | hybrid | understood | hybrid top 3 (grade) |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for query in sorted(queries, key=lambda q: per_query[(q.text, "hybrid")]["ndcg"]):
        hybrid = per_query[(query.text, "hybrid")]["ndcg"]
        if hybrid >= FAILURE_NDCG:
            continue
        judged = judge.grades(query, catalog)
        answer = run.answers[(query.text, "hybrid")]
        top = "; ".join(
            f"{catalog[pid].name} ({judged.get(pid, 0)})" if pid in catalog else str(pid) for pid in answer.ids[:3]
        )
        cells = " | ".join(f"{per_query[(query.text, mode)]['ndcg']:.2f}" for mode in MODES)
        lines.append(
            f"| {query.split} | {query.text} | {cells} | {_understood(answer.interpretation)} | {top or '(none)'} |"
        )
    return "\n".join(lines) + "\n"


def _understood(interpretation: dict[str, Any] | None) -> str:
    if not interpretation:
        return ""
    parts = []
    if interpretation.get("corrected_query"):
        parts.append(f"→ {interpretation['corrected_query']}")
    for name, value in (interpretation.get("applied_filters") or {}).items():
        parts.append(f"{name}={value}")
    return ", ".join(parts)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=judge.REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# --- a private stack ----------------------------------------------------------------------------------------


def start_stack(port: int, api_key: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RELEVANCE_PORT": str(port), "RELEVANCE_API_KEY": api_key}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(__file__).resolve().parent / "serve_fashion.sh")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: the script, bentoml and its workers
        )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the stack exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(2)
    stop_stack(process)
    raise SystemExit(f"the stack was not ready after 15 minutes; see {log_path}")


def stop_stack(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running stack serving the fashion catalog (default: start one)")
    parser.add_argument("--api-key", default=os.environ.get("RELEVANCE_API_KEY", "relevance-key"))
    parser.add_argument("--port", type=int, default=3077, help="port for the private stack")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the queries (latency samples)")
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="all")
    parser.add_argument("--report", type=Path, default=REPORTS / "relevance.md")
    args = parser.parse_args()

    catalog = judge.load_catalog()
    queries = [q for q in judge.load_queries() if args.split == "all" or q.split == args.split]
    stack = None
    url = args.url
    if url is None:
        url = f"http://127.0.0.1:{args.port}"
        print(f"starting a private stack on {url} (log: var/relevance/serve.log) ...", flush=True)
        stack = start_stack(args.port, args.api_key, judge.REPO / "var" / "relevance" / "serve.log")
    try:
        with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": args.api_key}) as client:
            run = benchmark(client, queries, rounds=args.rounds)
    finally:
        if stack is not None:
            stop_stack(stack)

    text = report(run, queries, catalog, url=url)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text, encoding="utf-8")
    raw = {f"{query}\t{mode}": answer.__dict__ for (query, mode), answer in run.answers.items()}
    args.report.with_suffix(".json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    print(text)
    print(f"written: {args.report}")


if __name__ == "__main__":
    main()
