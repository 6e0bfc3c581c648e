"""The load report: summary.md, tables and plots from what loadtests/run.py left in a report folder.

    .venv/bin/python loadtests/report.py reports/loadtest/<run>      # (re)build the report of a finished run

Reads phases.json (what ran, with what settings; batch-size histograms and /performance per vitrine phase),
requests/<phase>.csv (+ .stages.csv: one row per request and the start of each stage, from the locustfile),
limit-<model>.json (loadtests/limit.py) and processes.csv (loadtests/monitor.py). Writes summary.md, the
tables under tables/ and the plots under plots/. Latency figures are client-side (locust, same machine) over
successful requests; errors are counted apart. Ramp steps drop their first SETTLE_S seconds (users arriving).
"""

from __future__ import annotations

import csv
import itertools
import json
import platform
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TARGET_P95_MS = 150.0
LOOSE_P95_MS = 600.0  # where a ramp stops: past it a system only queues
MAX_ERROR_RATE = 0.01
SETTLE_S = 3.0
MIX_TARGETS = (  # (what, request names, p95 limit in ms)
    ("uncached search", ("search (uncached)",), 40.0),
    ("cached search", ("search (cached)",), 5.0),
    ("recommend", ("recommend (cached)", "recommend (uncached)"), 40.0),
    ("feedback", ("feedback",), 10.0),
)
SYSTEM_LABELS = {
    "baseline": "baseline (plain FastAPI)",
    "vitrine-nocache": "vitrine (settings of this run)",
    "vitrine-in-process-index-nocache": "vitrine, the index inside the API worker (INDEX_IN_PROCESS=true)",
    "vitrine-stock-nocache": "vitrine (settings of this run), BentoML's stock dispatcher",
}


# --- loading --------------------------------------------------------------------------------------------------


@dataclass
class Requests:
    t: np.ndarray  # end time, epoch seconds
    name: np.ndarray  # str
    ms: np.ndarray
    ok: np.ndarray  # bool
    detail: np.ndarray  # str

    @classmethod
    def load(cls, path: Path) -> Requests:
        t, name, ms, ok, detail = [], [], [], [], []
        if path.exists():
            with path.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    t.append(float(row["t"]))
                    name.append(row["name"])
                    ms.append(float(row["ms"]))
                    ok.append(row["ok"] == "1")
                    detail.append(row["detail"])
        return cls(np.asarray(t), np.asarray(name, dtype=object), np.asarray(ms), np.asarray(ok, dtype=bool),
                   np.asarray(detail, dtype=object))  # fmt: skip

    def select(self, mask: np.ndarray) -> Requests:
        return Requests(self.t[mask], self.name[mask], self.ms[mask], self.ok[mask], self.detail[mask])

    def between(self, start: float, end: float) -> Requests:
        """Requests that ended in [start, end)."""
        return self.select((self.t >= start) & (self.t < end))

    def started_between(self, start: float, end: float) -> Requests:
        """Requests that were sent in [start, end) (the log has end times and latencies)."""
        sent = self.t - self.ms / 1000.0
        return self.select((sent >= start) & (sent < end))

    def named(self, names: Iterable[str]) -> Requests:
        return self.select(np.isin(self.name, list(names)))


@dataclass(frozen=True)
class Stage:
    name: str
    rate: float
    users: int
    start: float
    end: float


def load_stages(path: Path, end: float) -> list[Stage]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    stages = []
    for i, row in enumerate(rows):
        if row["stage"] == "end":  # marks the end of the stage before it (a log may hold several runs)
            continue
        stop = float(rows[i + 1]["t"]) if i + 1 < len(rows) else end
        stages.append(Stage(row["stage"], float(row["rate"]), int(row["users"]), float(row["t"]), stop))
    return stages


# --- statistics -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    count: int
    errors: int
    seconds: float
    p50: float | None
    p95: float | None
    p99: float | None

    @property
    def throughput(self) -> float:
        """Successful answers per second."""
        return (self.count - self.errors) / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0


def stats(requests: Requests, seconds: float) -> Stats:
    good = requests.ms[requests.ok]
    if good.size:
        p50, p95, p99 = (float(v) for v in np.percentile(good, [50, 95, 99]))
    else:
        p50 = p95 = p99 = None
    return Stats(int(requests.ms.size), int((~requests.ok).sum()), seconds, p50, p95, p99)


@dataclass(frozen=True)
class Step:
    stage: Stage
    stats: Stats

    @property
    def passes(self) -> bool:
        s = self.stats
        return s.p95 is not None and s.p95 < TARGET_P95_MS and s.error_rate < MAX_ERROR_RATE


def ramp_steps(requests: Requests, stages: Sequence[Stage]) -> list[Step]:
    steps = []
    for stage in stages:
        start = stage.start + SETTLE_S
        if stage.end - start < 2:
            continue
        steps.append(Step(stage, stats(requests.between(start, stage.end), stage.end - start)))
    return steps


def saturation(steps: Sequence[Step], p95_ms: float = TARGET_P95_MS) -> Step | None:
    """The step with the most successful answers per second among those with p95 < `p95_ms` and < 1% errors."""
    passing = [
        step
        for step in steps
        if step.stats.p95 is not None and step.stats.p95 < p95_ms and step.stats.error_rate < MAX_ERROR_RATE
    ]
    return max(passing, key=lambda step: step.stats.throughput) if passing else None


def crossing(steps: Sequence[Step], p95_ms: float = TARGET_P95_MS) -> float | None:
    """The answered rate at which p95 crosses `p95_ms`, linearly interpolated between the last step under it
    and the next step (the step rule alone is only as fine as the ramp's steps); None without both."""
    for below, above in itertools.pairwise(steps):
        if below.passes and not above.passes and below.stats.p95 is not None and above.stats.p95 is not None:
            if above.stats.p95 <= below.stats.p95:
                return below.stats.throughput
            share = (p95_ms - below.stats.p95) / (above.stats.p95 - below.stats.p95)
            return below.stats.throughput + share * (above.stats.throughput - below.stats.throughput)
    return None


def timeline(requests: Requests, start: float, end: float, bin_s: float = 2.0) -> list[tuple[float, float | None, int]]:
    """(seconds since start, median ms of successful answers, requests) per bin, by send time."""
    out = []
    edge = start
    while edge < end:
        chunk = requests.started_between(edge, edge + bin_s)
        good = chunk.ms[chunk.ok]
        out.append((edge - start, float(np.median(good)) if good.size else None, int(chunk.ms.size)))
        edge += bin_s
    return out


def recovery(requests: Requests, stages: Sequence[Stage]) -> dict[str, Any] | None:
    """After a burst: the latency of requests sent in each 10 s after it, against those sent before it.

    By send time, not end time: requests sent during the burst and answered after it are the burst's."""
    named = {stage.name: stage for stage in stages}
    if not {"before", "spike", "after"} <= named.keys():
        return None
    before = stats(requests.started_between(named["before"].start + SETTLE_S, named["before"].end), 1)
    after = named["after"]
    windows = []
    edge = after.start
    while edge < after.end - 1:
        s = stats(requests.started_between(edge, min(edge + 10, after.end)), 10)
        windows.append({"from_s": round(edge - after.start), "p50": s.p50, "p95": s.p95, "count": s.count,
                        "errors": s.errors})  # fmt: skip
        edge += 10
    spike = named["spike"]
    burst = stats(requests.started_between(spike.start, spike.end), spike.end - spike.start)
    recovered = next(
        (w["from_s"] for w in windows if before.p50 and w["p50"] is not None and w["p50"] <= 1.25 * before.p50), None
    )
    return {"before": before, "spike": burst, "after_windows": windows, "recovered_after_s": recovered}


# --- helpers for the text -------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def system_kind(phase: dict[str, Any]) -> str:
    """baseline | vitrine-nocache | vitrine-stock-nocache | vitrine (the system name without the model)."""
    return str(phase["system"]).rsplit("-", 1)[0]


# --- the report -----------------------------------------------------------------------------------------------


class Report:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.meta = json.loads((out / "phases.json").read_text())
        self.phases: list[dict[str, Any]] = self.meta["phases"]
        self.requests = {p["name"]: Requests.load(out / "requests" / f"{p['name']}.csv") for p in self.phases}
        self.stages = {
            p["name"]: load_stages(out / "requests" / f"{p['name']}.csv.stages.csv", p["ended"]) for p in self.phases
        }
        self.limits = {
            path.stem.removeprefix("limit-"): json.loads(path.read_text()) for path in sorted(out.glob("limit-*.json"))
        }
        self.models = list(dict.fromkeys(p["model"] for p in self.phases))
        self.lines: list[str] = []

    def phase(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.phases if p["name"] == name), None)

    def ramps(self, model: str) -> dict[str, list[Step]]:
        found = {}
        for p in self.phases:
            if p["model"] == model and p["name"].endswith("-ramp"):
                found[system_kind(p)] = ramp_steps(self.requests[p["name"]], self.stages[p["name"]])
        return found

    def mix(self, model: str, suffix: str = "") -> tuple[dict[str, Any], Requests, float] | None:
        p = self.phase(f"vitrine-{model}-mix{suffix}")
        if p is None:
            return None
        steady = [s for s in self.stages[p["name"]] if s.name == "steady"]
        if not steady:
            return None
        stage = steady[0]
        return p, self.requests[p["name"]].between(stage.start, stage.end), stage.end - stage.start

    # --- sections ---
    def headline(self) -> None:
        self.lines += ["## Headline", ""]
        header = ["target", "limit"] + [self.meta["models"][m]["label"].split(" (")[0] for m in self.models]
        rows: list[list[str]] = []
        for what, names, limit in MIX_TARGETS:
            row = [f"{what} p95 at {self.meta['mix_rate']:g} req/s (mix, caching on)", f"<= {limit:g} ms"]
            for model in self.models:
                found = self.mix(model)
                if found is None:
                    row.append("–")
                    continue
                _, requests, seconds = found
                s = stats(requests.named(names), seconds)
                row.append(f"{ms(s.p95)} ms {'✅' if s.p95 is not None and s.p95 <= limit else '❌'} (n={s.count})")
            rows.append(row)
        row = ["errors at the mix rate", "none"]
        for model in self.models:
            found = self.mix(model)
            if found is None:
                row.append("–")
                continue
            _, requests, seconds = found
            s = stats(requests, seconds)
            row.append(f"{s.errors} of {s.count} {'✅' if s.errors == 0 else '❌'}")
        rows.append(row)
        rows += self._bunched_rows()
        ratio_row = ["saturation throughput (uncached search, p95 < 150 ms): vitrine / baseline", ">= 2x"]
        limit_row = ["vitrine saturation throughput / in-process limit", ">= 50%"]
        for model in self.models:
            ramps = self.ramps(model)
            vitrine, baseline = saturation(ramps.get("vitrine-nocache", [])), saturation(ramps.get("baseline", []))
            if vitrine and baseline:
                ratio = vitrine.stats.throughput / baseline.stats.throughput
                ratio_row.append(
                    f"{vitrine.stats.throughput:.1f} / {baseline.stats.throughput:.1f} req/s = "
                    f"**{ratio:.2f}x** {'✅' if ratio >= 2 else '❌'}"
                )
            else:
                ratio_row.append("–")
            limit = self.limits.get(model)
            if vitrine and limit:
                share = vitrine.stats.throughput / float(limit["limit_qps"])
                limit_row.append(
                    f"{vitrine.stats.throughput:.1f} / {float(limit['limit_qps']):.1f} q/s = "
                    f"**{100 * share:.0f}%** {'✅' if share >= 0.5 else '❌'}"
                )
            else:
                limit_row.append("–")
        cross_row = ["the same, interpolated where p95 crosses 150 ms between steps: vitrine / baseline", ">= 2x"]
        for model in self.models:
            ramps = self.ramps(model)
            vitrine, baseline = crossing(ramps.get("vitrine-nocache", [])), crossing(ramps.get("baseline", []))
            if vitrine and baseline:
                ratio = vitrine / baseline
                cross_row.append(
                    f"{vitrine:.1f} / {baseline:.1f} req/s = **{ratio:.2f}x** {'✅' if ratio >= 2 else '❌'}"
                )
            else:
                cross_row.append("–")
        peak_row = [f"for scale: best answered rate at p95 < {LOOSE_P95_MS:g} ms, vitrine / baseline; / limit", ""]
        for model in self.models:
            ramps = self.ramps(model)
            vitrine = saturation(ramps.get("vitrine-nocache", []), LOOSE_P95_MS)
            baseline = saturation(ramps.get("baseline", []), LOOSE_P95_MS)
            limit = self.limits.get(model)
            if vitrine and baseline and limit:
                peak_row.append(
                    f"{vitrine.stats.throughput:.1f} / {baseline.stats.throughput:.1f} req/s = "
                    f"{vitrine.stats.throughput / baseline.stats.throughput:.2f}x; "
                    f"{100 * vitrine.stats.throughput / float(limit['limit_qps']):.0f}% of the limit"
                )
            else:
                peak_row.append("–")
        rows += [ratio_row, cross_row, limit_row, peak_row]
        variants = (
            ("vitrine-in-process-index-nocache", "the index in the API worker (INDEX_IN_PROCESS=true)"),
            ("vitrine-stock-nocache", "BentoML's stock dispatcher (BATCHING_POLICY=stock)"),
        )
        for system, what in variants:
            ab_row = [f"A/B, {what}: saturation, / baseline, / limit; crossing", "(A/B)"]
            for model in self.models:
                ramps = self.ramps(model)
                other, baseline = saturation(ramps.get(system, [])), saturation(ramps.get("baseline", []))
                other_cross, baseline_cross = crossing(ramps.get(system, [])), crossing(ramps.get("baseline", []))
                limit = self.limits.get(model)
                if other and baseline and limit:
                    rate = other.stats.throughput
                    cross = ""
                    if other_cross and baseline_cross:
                        cross = f"; ~{other_cross:.1f} = {other_cross / baseline_cross:.2f}x"
                    ab_row.append(
                        f"{rate:.1f} req/s: {rate / baseline.stats.throughput:.2f}x, "
                        f"{100 * rate / float(limit['limit_qps']):.0f}%{cross}"
                    )
                else:
                    ab_row.append("–")
            if any(cell != "–" for cell in ab_row[2:]):
                rows.append(ab_row)
        self.lines += [table(header, rows), ""]
        self.lines += [
            "Client-side figures (locust on the same 2 cores), successful requests only; a step's throughput is "
            "its successful answers per second. The saturation figure is the best ramp step that held p95 < 150 ms "
            "with < 1% errors, so it is resolved to the ramp's step size.",
            "",
        ]

    def setup(self) -> None:
        meta = self.meta
        loads = self._machine_load()
        self.lines += ["## Set-up", ""]
        self.lines += [
            f"- Run {meta.get('started')} → {meta.get('ended')}; machine: {platform.machine()}, "
            f"{_cpus()} CPUs, shared with other work (mean 1-min load average during the phases: "
            + ", ".join(f"{name} {value:.1f}" for name, value in loads.items())
            + ").",
            f"- Catalog: PostgreSQL database `vitrine_loadtest`, {meta['catalog']['real']:,} real products (the "
            f"fashion feed) + {meta['catalog']['demo']:,} demo products = {meta['catalog']['total']:,}; Redis: a "
            "private redis-server.",
        ]
        for key, model in meta["models"].items():
            if key in self.models:
                self.lines.append(f"- Model `{key}`: {model['label']}, `{model['tag']}`. Index: {model['index']}")
        self.lines += [
            "- Index vectors: the real products are encoded by the model; the padding demo products get "
            "deterministic synthetic unit vectors near real ones (loadtests/prepare_index.py): search cost "
            "depends on rows, dimension and spread, not on meaning. 100k products → HNSW (M 32; its efSearch above).",
            f"- vitrine settings beyond the defaults: `{json.dumps(meta['vitrine_settings'])}`; caching off "
            "(`API_ENABLE_CACHE=false`) in the uncached ramps, on in the mix. Baseline: "
            f"`{json.dumps(meta['baseline_settings'])}`.",
            "- Uncached search ramps: every query new (distinct), `mode: vector`, no filters, 20 results; "
            f"{meta['plan']['step_s']:g} s per step (first {SETTLE_S:g} s dropped), stopped after a step over 600 ms "
            "p95. The mix: search 60% (Zipf over 400 shopper queries, 20% with filters, some second pages; "
            "`mode: vector` for the targets, the server's default mode in the `-hybrid` phase), recommend 25% "
            "(feed/similar/search/category), feedback 15%; Poisson arrivals; caching on, Redis emptied first.",
            "",
        ]

    def _machine_load(self) -> dict[str, float]:
        path = self.out / "processes.csv"
        values: dict[str, list[float]] = defaultdict(list)
        if path.exists():
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    if row["role"] == "load1" and row["phase"] != "idle":
                        values[row["phase"]].append(float(row["cpu_percent"]) / 100)
        return {phase: float(np.mean(v)) for phase, v in values.items() if v}

    def saturation_section(self) -> None:
        self.lines += ["## Uncached search: latency against offered load", ""]
        csv_rows = []
        for model in self.models:
            label = self.meta["models"][model]["label"]
            limit = self.limits.get(model)
            self.lines += [f"### {label}", ""]
            if limit:
                self.lines += [
                    f"In-process limit (loadtests/limit.py, no HTTP, the text tower as served"
                    f"{', int8' if limit.get('int8_text') else ''}): **{float(limit['limit_qps']):.1f} queries/s** "
                    f"at batch {limit['limit_batch_size']}; best with p95 batch time <= {limit['bound_ms']:g} ms: "
                    f"{limit['bounded_qps']} q/s (batch {limit['bounded_batch_size']})"
                    + (
                        f"; with a float32 tower (runs before 30 Nov evening): {limit['float32_limit_qps']} q/s."
                        if limit.get("float32_limit_qps")
                        else "."
                    ),
                    "",
                    table(
                        ["batch", "encode p50 ms", "search p50 ms", "batch p50 ms", "batch p95 ms", "queries/s"],
                        [
                            [
                                r["batch_size"],
                                r["encode_p50_ms"],
                                r["search_p50_ms"],
                                r["batch_p50_ms"],
                                r["batch_p95_ms"],
                                r["queries_per_s"],
                            ]
                            for r in limit["rows"]
                        ],
                    ),
                    "",
                ]
            for kind, steps in self.ramps(model).items():
                best = saturation(steps)
                crossed = crossing(steps)
                self.lines += [
                    f"**{SYSTEM_LABELS.get(kind, kind)}**: saturation "
                    + (f"{best.stats.throughput:.1f} req/s (step {best.stage.rate:g})" if best else "not reached")
                    + (f"; p95 crosses 150 ms at ~{crossed:.1f} req/s (interpolated)" if crossed else ""),
                    "",
                    table(
                        ["offered req/s", "answered/s", "p50 ms", "p95 ms", "p99 ms", "errors", "p95 < 150"],
                        [
                            [
                                f"{s.stage.rate:g}",
                                f"{s.stats.throughput:.1f}",
                                ms(s.stats.p50),
                                ms(s.stats.p95),
                                ms(s.stats.p99),
                                f"{s.stats.errors} ({100 * s.stats.error_rate:.1f}%)",
                                "yes" if s.passes else "no",
                            ]
                            for s in steps
                        ],
                    ),
                    "",
                ]
                csv_rows += [
                    [
                        model,
                        kind,
                        s.stage.rate,
                        round(s.stats.throughput, 2),
                        s.stats.p50,
                        s.stats.p95,
                        s.stats.p99,
                        s.stats.count,
                        s.stats.errors,
                    ]
                    for s in steps
                ]
        write_csv(
            self.out / "tables" / "ramp_steps.csv",
            ["model", "system", "offered", "answered_per_s", "p50_ms", "p95_ms", "p99_ms", "requests", "errors"],
            csv_rows,
        )
        self.lines += ["![latency against offered load](plots/latency_vs_load.png)", ""]

    def _bunched_rows(self) -> list[list[str]]:
        """The burst rule: with arrivals bunched into one wave a second, each p95 within
        max(3 x its open-loop p95, open-loop p95 + 75 ms), ~the mix rate answered, no errors."""
        rows: list[list[str]] = []
        if not any(self.mix(model, "-bunched") for model in self.models):
            return rows
        for what, names, _ in MIX_TARGETS:
            row = [f"{what} p95, arrivals bunched (one wave a second)", "<= max(3 x, + 75 ms) open loop"]
            for model in self.models:
                bunched, steady = self.mix(model, "-bunched"), self.mix(model)
                if bunched is None or steady is None:
                    row.append("–")
                    continue
                b, o = stats(bunched[1].named(names), bunched[2]), stats(steady[1].named(names), steady[2])
                if b.p95 is None or o.p95 is None:
                    row.append("–")
                    continue
                bound = max(3 * o.p95, o.p95 + 75)
                row.append(f"{ms(b.p95)} ms <= {ms(bound)} {'✅' if b.p95 <= bound else '❌'} (n={b.count})")
            rows.append(row)
        row = ["arrivals bunched: answered rate, errors", "~mix rate, none"]
        for model in self.models:
            bunched = self.mix(model, "-bunched")
            if bunched is None:
                row.append("–")
                continue
            s = stats(bunched[1], bunched[2])
            row.append(f"{s.throughput:.1f} req/s, {s.errors} of {s.count} {'✅' if s.errors == 0 else '❌'}")
        rows.append(row)
        return rows

    def cpu_section(self) -> None:
        """CPU milliseconds per answered request, per kind of process, in each mix phase (processes.csv)."""
        path = self.out / "processes.csv"
        if not path.exists():
            return
        rows: list[list[Any]] = []
        for model, suffix in ((m, x) for m in self.models for x in ("", "-hybrid", "-bunched")):
            found = self.mix(model, suffix)
            if found is None:
                continue
            phase, requests, seconds = found
            answered = stats(requests, seconds).throughput
            for role, cores in cpu_by_role(path, phase["name"], phase.get("system", "")).items():
                if answered > 0 and cores > 0.005:
                    rows.append([f"{model}{suffix}", role, f"{100 * cores:.0f}", f"{1000 * cores / answered:.2f}"])
        if not rows:
            return
        self.lines += [
            "## CPU per request in the mix",
            "",
            "CPU time of each kind of process (all its workers or backends together) per answered request, over "
            "the steady part of each mix phase: mean cores used x 1000 / answered requests per second. Sampled "
            "once a second with psutil; `locust` is the load generator on the same box.",
            "",
            table(["phase", "process", "mean CPU %", "CPU ms / request"], rows),
            "",
        ]

    def mix_section(self) -> None:
        csv_rows = []
        for model, suffix in ((m, x) for m in self.models for x in ("", "-hybrid", "-bunched")):
            found = self.mix(model, suffix)
            if found is None:
                continue
            phase, requests, seconds = found
            mode = {"": "vector search", "-hybrid": "the server's default search mode (hybrid)",
                    "-bunched": "vector search, arrivals bunched into one wave a second"}[suffix]  # fmt: skip
            self.lines += [f"## The mix at {self.meta['mix_rate']:g} req/s, caching on, {mode} ({model})", ""]
            rows = []
            names = sorted(set(requests.name.tolist()))
            groups = [(n, (n,)) for n in names] + [
                ("search (all)", tuple(n for n in names if n.startswith("search"))),
                ("recommend (all)", tuple(n for n in names if n.startswith("recommend"))),
                ("all", tuple(names)),
            ]
            for label, group in groups:
                s = stats(requests.named(group), seconds)
                rows.append([label, s.count, f"{s.throughput:.1f}", ms(s.p50), ms(s.p95), ms(s.p99), s.errors])
                csv_rows.append([model + suffix, label, s.count, round(s.throughput, 2), s.p50, s.p95, s.p99, s.errors])
            self.lines += [
                table(["request", "count", "answered/s", "p50 ms", "p95 ms", "p99 ms", "errors"], rows),
                "",
                self._details(requests),
                "",
                self._server_side(phase),
                "",
            ]
            spike = self.phase(f"vitrine-{model}-spike")
            if spike is not None and not suffix:
                self.lines += [self._stage_table(spike, "Spike (mix): per stage, by send time"), ""]
        write_csv(
            self.out / "tables" / "mix_endpoints.csv",
            ["model", "request", "count", "answered_per_s", "p50_ms", "p95_ms", "p99_ms", "errors"],
            csv_rows,
        )

    def _details(self, requests: Requests) -> str:
        counts: dict[str, int] = defaultdict(int)
        for name, detail in zip(requests.name.tolist(), requests.detail.tolist(), strict=True):
            if detail:
                counts[f"{name.split(' ')[0]} {detail}"] += 1
        if not counts:
            return ""
        return "Requests by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "."

    def _stage_table(self, phase: dict[str, Any], title: str) -> str:
        requests = self.requests[phase["name"]]
        rows = []
        for stage in self.stages[phase["name"]]:
            s = stats(requests.started_between(stage.start, stage.end), stage.end - stage.start)
            rows.append([stage.name, f"{stage.rate:g}", f"{s.throughput:.1f}", ms(s.p50), ms(s.p95), ms(s.p99),
                         s.errors])  # fmt: skip
        header = ["stage", "offered req/s", "answered/s", "p50 ms", "p95 ms", "p99 ms", "errors"]
        return f"**{title}**\n\n" + table(header, rows)

    def _server_side(self, phase: dict[str, Any]) -> str:
        performance = phase.get("performance") or {}
        operations = performance.get("operations") or {}
        split = performance.get("cached_vs_uncached") or {}
        if not operations:
            return ""
        rows = [
            [stage, v["count"], ms(v["p50_ms"]), ms(v["p95_ms"]), ms(v["p99_ms"])]
            for stage, v in sorted({**operations, **split}.items())
        ]
        return (
            "**Server side, per stage** (`/performance` over the whole phase, warm-up included; the endpoint rows "
            "are the API's own time, without HTTP to and from locust)\n\n"
            + table(["stage", "count", "p50 ms", "p95 ms", "p99 ms"], rows)
        )

    def burst_section(self) -> None:
        bursts = [p for p in self.phases if p["name"].endswith("-burst")]
        cooldowns = [p for p in self.phases if p["name"].endswith("-cooldown")]
        if not bursts and not cooldowns:
            return
        self.lines += ["## After overload (BentoML #3630 / #3664)", ""]
        if cooldowns:
            rows = []
            for p in cooldowns:
                ramp = self.phase(p["name"].removesuffix("-cooldown") + "-ramp")
                steps = ramp_steps(self.requests[ramp["name"]], self.stages[ramp["name"]]) if ramp else []
                stage = next((st for st in self.stages[p["name"]] if st.name == "steady"), None)
                if not steps or stage is None:
                    continue
                after = stats(self.requests[p["name"]].between(stage.start + SETTLE_S, stage.end), 1)
                first = steps[0].stats
                ratio = f"{after.p50 / first.p50:.1f}x" if after.p50 and first.p50 else "–"
                rows.append([SYSTEM_LABELS.get(system_kind(p), p["system"]), f"{steps[0].stage.rate:g}",
                             ms(first.p50), ms(first.p95), ms(after.p50), ms(after.p95), ratio])  # fmt: skip
            self.lines += [
                "Uncached search at 3 req/s on the ramp's stacks once the ramp (which ends past saturation) is "
                "over, against the ramp's first step on the same stacks:",
                "",
                table(
                    [
                        "system",
                        "first step req/s",
                        "p50 then",
                        "p95 then",
                        "p50 after the ramp",
                        "p95 after the ramp",
                        "p50 after / then",
                    ],
                    rows,
                ),
                "",
            ]
        if not bursts:
            return
        self.lines += [
            "On fresh stacks: uncached search at 3 req/s, a 10 s burst, then 3 req/s again (rates in the phase's "
            "args). Median "
            "latency of the requests sent in each 10 s after the burst against those sent before it (by send "
            "time: what the burst itself sent is the burst's). The burst leaves a backlog; what matters is "
            "whether latency returns to its level before once the backlog is gone:",
            "",
        ]
        rows = []
        for p in bursts:
            found = recovery(self.requests[p["name"]], self.stages[p["name"]])
            if found is None:
                continue
            windows = found["after_windows"]
            back = found["recovered_after_s"]
            rows.append(
                [
                    SYSTEM_LABELS.get(system_kind(p), p["system"]),
                    ms(found["before"].p50),
                    f"{found['spike'].errors} of {found['spike'].count}",
                    *(ms(w["p50"]) for w in windows[:6]),
                    f"{back} s" if back is not None else "not within the run",
                ]
            )
        header = [
            "system",
            "p50 before",
            "errors in burst",
            *(f"after +{10 * i}s" for i in range(6)),
            "back within 1.25x",
        ]
        self.lines += [table(header, rows), "", "![burst](plots/burst_recovery.png)", ""]
        for p in bursts:
            rows = self._stage_timeline(p)
            if rows:
                self.lines += [
                    f"Server-side stages over time, {SYSTEM_LABELS.get(system_kind(p), p['system'])} "
                    "(`/performance` over each 5 s; seconds from the end of the burst; p50 ms):",
                    "",
                    table(["s from burst end", "requests", "search", "encode (API → encoder)", "index_search"], rows),
                    "",
                ]

    def _stage_timeline(self, phase: dict[str, Any]) -> list[list[Any]]:
        stages = {stage.name: stage for stage in self.stages[phase["name"]]}
        if "spike" not in stages:
            return []
        rows = []
        for point in phase.get("stage_timeline") or []:
            if "search" not in point:
                continue
            encode, index = point.get("encode") or {}, point.get("index_search") or {}
            rows.append(
                [
                    f"{point['t'] - stages['spike'].end:+.0f}",
                    point["search"]["count"],
                    ms(point["search"]["p50_ms"]),
                    ms(encode.get("p50_ms")),
                    ms(index.get("p50_ms")),
                ]
            )
        return rows

    def batches_section(self) -> None:
        self.lines += ["## Batch sizes (from /metrics, per phase)", ""]
        rows, csv_rows = [], []
        for p in self.phases:
            for series, entry in sorted((p.get("batches") or {}).items()):
                shown = ", ".join(f"≤{b['le']:g}: {b['batches']}" for b in entry["buckets"] if b["batches"])
                rows.append([p["name"], series, entry["batches"], f"{entry['mean']:.2f}", shown])
                csv_rows += [[p["name"], series, b["le"], b["batches"]] for b in entry["buckets"]]
        self.lines += [
            "`bentoml_service_adaptive_batch_size` counts requests merged per batch; `vitrine_encoder_batch_size` "
            "and `vitrine_index_batch_size` count items per batch the model or index ran.",
            "",
            table(["phase", "series", "batches", "mean", "distribution (batches per bucket)"], rows),
            "",
            "![batch sizes](plots/batch_sizes.png)",
            "",
        ]
        write_csv(self.out / "tables" / "batches.csv", ["phase", "series", "le", "batches"], csv_rows)

    def processes_section(self) -> None:
        path = self.out / "processes.csv"
        if not path.exists():
            return
        cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
        rss: dict[tuple[str, str], list[float]] = defaultdict(list)
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row["phase"] == "idle" or (row["system"] == "machine" and row["role"] == "load1"):
                    continue
                # Several stacks may be up at once (the interleaved ramps): a role is named with its system.
                shared = row["system"] in ("machine", "locust", "redis", "postgres")
                role = row["role"] if shared else f"{row['system']}/{row['role']}"
                cpu[(row["phase"], role)].append(float(row["cpu_percent"]))
                rss[(row["phase"], role)].append(float(row["rss_mb"]))
        by_phase: dict[str, list[list[Any]]] = defaultdict(list)
        csv_rows = []
        for (phase, role), values in sorted(cpu.items()):
            mean = float(np.mean(values))  # per process; postgres: one backend on average
            peak = max(rss[(phase, role)])
            csv_rows.append([phase, role, round(mean, 1), round(peak, 1)])
            if mean >= 1.0 or role == "all cpus":  # idle stacks of an interleaved ramp left out of the text
                by_phase[phase].append([role, f"{mean:.0f}", f"{peak:.0f}"])
        write_csv(self.out / "tables" / "processes.csv", ["phase", "role", "mean_cpu_percent", "peak_rss_mb"], csv_rows)
        self.lines += [
            "## CPU and memory per process",
            "",
            "Mean CPU % (100 = one core) and peak RSS per process role over each phase; `all cpus` is the "
            "machine's total use (100 = both cores), the rest of which is other people's work on the box. "
            "`postgres` is one backend on average. Full table: tables/processes.csv.",
            "",
        ]
        for phase, rows in by_phase.items():
            summary = "; ".join(f"{role} {mean}% / {peak} MB" for role, mean, peak in rows)
            self.lines.append(f"- **{phase}**: {summary}")
        self.lines += ["", "![cpu](plots/cpu_by_process.png)", ""]

    def files_section(self) -> None:
        self.lines += [
            "## Files",
            "",
            "`csv/` locust's own CSVs per phase (stats, failures, exceptions, history) · `requests/` one row per "
            "request and each phase's stages · `processes.csv` CPU and memory samples · `limit-*.json` the "
            "in-process limit · `phases.json` settings, batch histograms, /performance and /cache/stats per "
            "phase · `tables/` the tables above as CSV · `plots/` · `logs/` served processes and locust.",
            "",
        ]

    def write(self) -> Path:
        self.lines = ["# vitrine load report", ""]
        self.headline()
        self.setup()
        self.saturation_section()
        self.mix_section()
        self.cpu_section()
        self.burst_section()
        self.batches_section()
        self.processes_section()
        self.files_section()
        plots(self)
        path = self.out / "summary.md"
        path.write_text("\n".join(self.lines))
        return path


def cpu_by_role(path: Path, phase: str, system: str = "") -> dict[str, float]:
    """Mean cores used per kind of process during `phase`: workers of a role (api#1, api#2) and postgres
    backends added up per sample, then averaged over the samples. `system` keeps one stack's processes."""
    per_sample: dict[tuple[str, str], float] = defaultdict(float)
    times: set[str] = set()
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["phase"] != phase or row["system"] == "machine":
                continue
            if system and row["system"] not in (system, "locust", "redis", "postgres"):
                continue
            role = row["role"].split("#")[0]
            per_sample[(row["t"], role)] += float(row["cpu_percent"]) / 100
            times.add(row["t"])
    totals: dict[str, float] = defaultdict(float)
    for (_, role), cores in per_sample.items():
        totals[role] += cores
    return {role: total / len(times) for role, total in sorted(totals.items())} if times else {}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- plots ----------------------------------------------------------------------------------------------------


def plots(report: Report) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = report.out / "plots"
    folder.mkdir(exist_ok=True)

    # Latency percentiles and answered rate against offered load, per model and system.
    models = report.models
    if any(report.ramps(m) for m in models):
        figure, axes = plt.subplots(2, len(models), figsize=(6.5 * len(models), 8), squeeze=False)
        for column, model in enumerate(models):
            top, bottom = axes[0][column], axes[1][column]
            for kind, steps in report.ramps(model).items():
                label = SYSTEM_LABELS.get(kind, kind)
                x = [s.stage.rate for s in steps]
                for pct, style in (("p50", ":"), ("p95", "-"), ("p99", "--")):
                    y = [getattr(s.stats, pct) or np.nan for s in steps]
                    top.plot(x, y, style, marker="o", markersize=3, label=f"{label} {pct}")
                bottom.plot(x, [s.stats.throughput for s in steps], marker="o", label=label)
            top.axhline(TARGET_P95_MS, color="grey", linewidth=0.8)
            top.set_yscale("log")
            top.set_title(f"uncached search, {model}")
            top.set_ylabel("latency ms (client side)")
            top.legend(fontsize=6)
            limit = report.limits.get(model)
            if limit:
                bottom.axhline(float(limit["limit_qps"]), color="grey", linestyle="--", linewidth=0.8,
                               label="in-process limit")  # fmt: skip
            bottom.set_xlabel("offered req/s")
            bottom.set_ylabel("answered req/s")
            bottom.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(folder / "latency_vs_load.png", dpi=110)
        plt.close(figure)

    # Batch-size distributions: items per batch (encoder text tower, index) per vitrine phase.
    series_names = ("vitrine_encoder_batch_size{tower=text}", "vitrine_index_batch_size")
    with_batches = [p for p in report.phases if p.get("batches")]
    if with_batches:
        figure, axes = plt.subplots(1, 2, figsize=(13, 4.5))
        width = 0.8 / max(1, len(with_batches))
        for axis, series in zip(axes, series_names, strict=True):
            for i, p in enumerate(with_batches):
                entry = p["batches"].get(series)
                if not entry:
                    continue
                buckets = [b for b in entry["buckets"] if b["le"] != float("inf")]
                total = max(1, sum(b["batches"] for b in buckets))
                x = np.arange(len(buckets)) + i * width
                axis.bar(x, [b["batches"] / total for b in buckets], width=width, label=p["name"])
                axis.set_xticks(np.arange(len(buckets)) + 0.4, [f"≤{b['le']:g}" for b in buckets])
            axis.set_title(series)
            axis.set_xlabel("items per batch")
            axis.set_ylabel("share of batches")
            axis.legend(fontsize=6)
        figure.tight_layout()
        figure.savefig(folder / "batch_sizes.png", dpi=110)
        plt.close(figure)

    # Burst recovery: median latency over time.
    bursts = [p for p in report.phases if p["name"].endswith("-burst")]
    if bursts:
        figure, axis = plt.subplots(figsize=(10, 4.5))
        for p in bursts:
            stages = report.stages[p["name"]]
            if not stages:
                continue
            points = timeline(report.requests[p["name"]], stages[0].start, stages[-1].end)
            axis.plot([x for x, _, _ in points], [y if y is not None else np.nan for _, y, _ in points],
                      label=SYSTEM_LABELS.get(system_kind(p), p["name"]))  # fmt: skip
            for stage in stages[1:]:
                axis.axvline(stage.start - stages[0].start, color="grey", linewidth=0.6)
        axis.set_yscale("log")
        axis.set_xlabel("seconds, by send time (before, burst, after)")
        axis.set_ylabel("median latency ms, 2 s bins")
        axis.legend()
        figure.tight_layout()
        figure.savefig(folder / "burst_recovery.png", dpi=110)
        plt.close(figure)

    # CPU by role per phase (stacked).
    path = report.out / "tables" / "processes.csv"
    if path.exists():
        with path.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row["role"] != "all cpus"]
        phases = list(dict.fromkeys(row["phase"] for row in rows))
        roles = sorted({row["role"] for row in rows})
        if phases:
            figure, axis = plt.subplots(figsize=(max(8, 1.1 * len(phases)), 5))
            bottom = np.zeros(len(phases))
            for role in roles:
                values = np.array([
                    sum(float(r["mean_cpu_percent"]) for r in rows if r["phase"] == phase and r["role"] == role)
                    for phase in phases
                ])  # fmt: skip
                axis.bar(phases, values, bottom=bottom, label=role)
                bottom += values
            axis.set_ylabel("mean CPU % (100 = one core)")
            axis.tick_params(axis="x", rotation=60, labelsize=7)
            axis.legend(fontsize=6, ncol=2)
            figure.tight_layout()
            figure.savefig(folder / "cpu_by_process.png", dpi=110)
            plt.close(figure)


def build_report(out: Path) -> Path:
    return Report(Path(out)).write()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py REPORT_FOLDER")
    print(build_report(Path(sys.argv[1])))
