"""`make loadtest`: the whole benchmark, headless, into one report folder.

    .venv/bin/python loadtests/run.py                # ~25 min: ViT-B-32 and MiniLM, every phase
    .venv/bin/python loadtests/run.py --quick        # ~6 min: ViT-B-32 only, fewer and shorter steps
    .venv/bin/python loadtests/run.py --medium       # ~20 min: both towers, shorter steps, no burst or spike
    .venv/bin/python loadtests/run.py --out DIR      # default reports/loadtest/<UTC time>

Everything runs on this machine against 127.0.0.1, bounded in time: each locust phase ends with its shape
(and a hard timeout), a ramp stops after the first step far past saturation. Phases, per model:

    limit            loadtests/limit.py: in-process batched encode + search, no HTTP (the stack is down)
    baseline         loadtests/baseline.py under uvicorn: uncached search ramp (distinct queries)
    vitrine-nocache  API_ENABLE_CACHE=false, VITRINE_SETTINGS: the same ramp, interleaved step by step with the
                     baseline's; then (ViT) a burst and the recovery after it (BentoML #3630/#3664)
    vitrine-in-process-index  (ViT, full run) the same ramp with the index inside the API worker
                     (INDEX_IN_PROCESS=true): the topology A/B
    vitrine-stock    (ViT, full run) the same ramp and burst with BentoML's stock dispatcher, i.e. without
                     runners/batching.py's policy (BATCHING_POLICY=stock)
    vitrine          caching on: the shop's mix (vector search) steady at 50 requests/s; the same mix with
                     arrivals bunched into one wave a second; then (ViT) the mix in the server's default
                     search mode (hybrid) and a spike

Then loadtests/report.py writes summary.md, the plots and the tables from what the phases left in the folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loadtests import stack  # noqa: E402
from loadtests.monitor import ProcessSampler, batch_histograms, histogram_delta  # noqa: E402
from loadtests.report import SETTLE_S, build_report  # noqa: E402

# What vitrine is served with in these runs, beyond the code's defaults: nothing since the batching policy
# (runners/batching.py), which shares one encoder queue best (loadtests/README.md says why).
VITRINE_SETTINGS: dict[str, str] = {}
IN_PROCESS_INDEX: dict[str, str] = {"INDEX_IN_PROCESS": "true"}  # A/B: the index inside the API worker
BASELINE_SETTINGS: dict[str, str] = {"BASELINE_ENCODE_THREADS": "1"}
STOCK_DISPATCHER: dict[str, str] = {"BATCHING_POLICY": "stock"}  # A/B: without runners/batching.py
MIX_RATE = 50.0
BURST_REST_S = 20.0
STOP_P95_MS = 600.0


@dataclass(frozen=True)
class Plan:
    models: tuple[str, ...]
    limit_batches: str
    limit_seconds: float
    ramp_rates: dict[str, str]  # model -> offered req/s per step, for every system of the ramp
    step_s: float
    mix_warmup_s: float
    mix_s: float
    burst: bool
    fix: bool  # A/B: vitrine with BentoML's stock dispatcher, and with default settings; ViT only
    spike: bool
    hybrid_s: float  # ViT: the mix again in the server's default search mode (hybrid), seconds; 0: not run
    bunched_s: float  # the mix again with arrivals bunched into one wave a second (the burst rule), seconds


FULL = Plan(
    models=("vit", "minilm"),
    limit_batches="1,2,4,8,16,32",
    limit_seconds=5.0,
    # ViT held p95 < 150 ms at its top step in the 30 Nov night run (80), on the ninth session's fast evening (120,
    # against an in-process limit of 317 q/s) and on the morning of 1 Dec (200, of 386): the ramp goes on until it
    # does not, in steps of 10 from 120 to 160 (half the limit was 146 req/s on a slow day). MiniLM still held at
    # its top step of 140 in the early hours of 1 Dec (a floor of 32% of its limit of 446): its ramp goes on to past
    # half of it.
    ramp_rates={
        "vit": "5,10,15,20,25,30,35,40,50,60,70,80,90,100,120,130,140,150,160,180,200,220,240,260",
        "minilm": "10,20,30,40,50,60,70,80,100,120,140,160,180,200,225,250",
    },
    step_s=15.0,
    mix_warmup_s=30.0,
    mix_s=100.0,
    burst=True,
    fix=True,
    spike=True,
    hybrid_s=60.0,
    bunched_s=60.0,
)
QUICK = Plan(
    models=("vit",),
    limit_batches="1,4,16",
    limit_seconds=3.0,
    ramp_rates={"vit": "5,10,20,30,40,55,70,85"},  # 55 still held p95 < 150 ms on 30 Nov: on until it does not
    step_s=10.0,
    mix_warmup_s=15.0,
    mix_s=40.0,
    burst=False,
    fix=False,
    spike=False,
    hybrid_s=0.0,
    bunched_s=30.0,
)


# The full run's phases at shorter steps, both towers, without the burst, hybrid and spike phases (~20 min):
# what fits beside a working day on this box.
MEDIUM = Plan(
    models=("vit", "minilm"),
    limit_batches="1,4,16,32",
    limit_seconds=3.0,
    ramp_rates={
        "vit": "5,10,15,20,25,30,40,50,60,80,100,120,140,160,180",
        "minilm": "10,20,30,40,50,60,80,100,120",
    },
    step_s=10.0,
    mix_warmup_s=15.0,
    mix_s=45.0,
    burst=False,
    fix=True,
    spike=False,
    hybrid_s=0.0,
    bunched_s=30.0,
)


@dataclass
class RampTarget:
    """One system in an interleaved ramp."""

    stack: stack.Stack
    phase: str
    done: bool = False
    before: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0


@dataclass
class Run:
    out: Path
    plan: Plan
    sampler: ProcessSampler
    phases: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def log(self, message: str) -> None:
        line = f"[{time.time() - self.started:7.1f}s] {message}"
        print(line, flush=True)
        with (self.out / "run.log").open("a") as handle:
            handle.write(line + "\n")

    def save(self, extra: dict[str, Any]) -> None:
        (self.out / "phases.json").write_text(json.dumps({**extra, "phases": self.phases}, indent=2, default=str))

    def _locust(self, label: str, url: str, args: list[str], request_log: Path, budget_s: float) -> None:
        (self.out / "csv").mkdir(exist_ok=True)
        argv = [
            str(stack.BIN / "locust"), "-f", str(REPO / "loadtests" / "locustfile.py"), "--headless",
            "--host", url, "--csv", str(self.out / "csv" / label), "--request-log", str(request_log),
            "--loglevel", "WARNING", "--exit-code-on-error", "0", "--stop-timeout", "10", *args,
        ]  # fmt: skip
        locust = stack.Process(f"locust-{label}", argv, stack.base_env(), self.out / "logs" / f"locust-{label}.log")
        locust.start()
        self.sampler.track("locust", locust.pid)
        try:
            assert locust.popen is not None
            locust.popen.wait(timeout=budget_s + 120)
        except subprocess.TimeoutExpired:
            self.log(f"{label}: over its time budget; stopped")
        finally:
            locust.stop()
            self.sampler.untrack("locust")

    def _record(self, name: str, target: stack.Stack, model: str, args: list[str], started: float,
                ended: float, before: dict[str, Any]) -> None:  # fmt: skip
        record: dict[str, Any] = {
            "name": name,
            "system": target.name,
            "model": model,
            "settings": target.settings,
            "args": args,
            "started": started,
            "ended": ended,
        }
        if target.name.startswith("vitrine"):
            record["batches"] = histogram_delta(before, _metrics(target.url))
            record["performance"] = _get_json(
                f"{target.url}/performance", params={"window_s": max(1.0, time.time() - started)}
            )
            record["cache_stats"] = _get_json(f"{target.url}/cache/stats")
        self.phases.append(record)

    def locust(
        self, name: str, target: stack.Stack, model: str, args: list[str], *, budget_s: float, poll_s: float = 0
    ) -> None:
        """One phase: one locust run against one system; with `poll_s`, the server's per-stage percentiles over
        each `poll_s` window are recorded too (where the time goes, over time)."""
        self.log(f"phase {name}: {' '.join(args)}")
        self.sampler.phase = name
        before = _metrics(target.url) if target.name.startswith("vitrine") else {}
        (self.out / "requests").mkdir(exist_ok=True)
        poller = _StagePoller(target.url, poll_s) if poll_s else None
        started = time.time()
        self._locust(name, target.url, args, self.out / "requests" / f"{name}.csv", budget_s)
        self._record(name, target, model, args, started, time.time(), before)
        if poller is not None:
            self.phases[-1]["stage_timeline"] = poller.stop()
        self.sampler.phase = "idle"

    def ramp(self, targets: list[RampTarget], model: str, rates: list[float], step_s: float) -> None:
        """Uncached search at each rate in turn, the systems interleaved step by step, so that a change in the
        machine's background load (it is shared) hits every system alike; a system is left out of the later
        steps once a step's p95 exceeds STOP_P95_MS (or a fifth of its requests fail)."""
        (self.out / "requests").mkdir(exist_ok=True)
        for target in targets:
            _warm_up(target.stack.url)
            target.before = _metrics(target.stack.url) if target.stack.name.startswith("vitrine") else {}
            log = self.out / "requests" / f"{target.phase}.csv"
            log.write_text("t,name,ms,ok,detail\n")
            Path(f"{log}.stages.csv").write_text("t,stage,rate,users\n")
        for rate in rates:
            for target in targets:
                if target.done:
                    continue
                if not target.stack.process.alive():
                    self.log(f"{target.phase}: the served process exited (see logs/); no more steps")
                    target.done = True
                    continue
                self.log(f"{target.phase}: {rate:g} req/s")
                self.sampler.phase = target.phase
                step = self.out / "requests" / f"{target.phase}.step.csv"
                args = ["--workload", "uncached-search", "--shape", "steady", "--rate", f"{rate:g}",
                        "--warmup-s", "0", "--duration", f"{step_s:g}", "--search-mode", "vector"]  # fmt: skip
                started = time.time()
                target.started = target.started or started
                self._locust(f"{target.phase}-{rate:g}", target.stack.url, args, step, step_s)
                target.ended = time.time()
                p95, failed = _append_step(step, self.out / "requests" / f"{target.phase}.csv", f"ramp {rate:g}")
                if p95 > STOP_P95_MS or failed > 0.2:
                    self.log(f"{target.phase}: p95 {p95:.0f} ms, {100 * failed:.0f}% failed: saturated, no more steps")
                    target.done = True
        self.sampler.phase = "idle"
        for target in targets:
            self._record(target.phase, target.stack, model, ["ramp", ",".join(f"{r:g}" for r in rates)],
                         target.started, target.ended, target.before)  # fmt: skip

    def limit(self, model: stack.Model, tag: str) -> None:
        self.log(f"phase limit-{model.key}: in-process batched encode + search")
        self.sampler.phase = f"limit-{model.key}"
        out = self.out / f"limit-{model.key}.json"
        done = subprocess.run(
            [sys.executable, str(REPO / "loadtests" / "limit.py"), "--out", str(out),
             "--batch-sizes", self.plan.limit_batches, "--seconds", str(self.plan.limit_seconds)],
            env=stack.model_env(model, tag), cwd=REPO, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"limit.py failed:\n{done.stderr[-3000:]}")
        self.sampler.phase = "idle"


class _StagePoller(threading.Thread):
    """GET /performance?window_s=N every N seconds: per-stage p50/p95 of the last N seconds, over time."""

    def __init__(self, url: str, every_s: float) -> None:
        super().__init__(name="stage-poller", daemon=True)
        self.url, self.every_s = url, every_s
        self.points: list[dict[str, Any]] = []
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            found = _get_json(f"{self.url}/performance", params={"window_s": self.every_s})
            operations = found.get("operations") or {} if isinstance(found, dict) else {}
            self.points.append(
                {
                    "t": time.time(),
                    **{
                        stage: {"count": v["count"], "p50_ms": v["p50_ms"], "p95_ms": v["p95_ms"]}
                        for stage, v in operations.items()
                        if stage in ("search", "encode", "index_search", "enrich")
                    },
                }
            )

    def stop(self) -> list[dict[str, Any]]:
        self._halt.set()
        self.join(timeout=30)
        return self.points


def _append_step(step: Path, log: Path, stage: str) -> tuple[float, float]:
    """Append one step's request log to the phase's, its stage renamed; returns (p95 ms, failed share) of the
    step after its first SETTLE_S seconds."""
    times: list[float] = []
    failed = 0
    stages = Path(f"{step}.stages.csv").read_text().splitlines()[1:] if Path(f"{step}.stages.csv").exists() else []
    first = float(stages[0].split(",")[0]) if stages else 0.0
    with log.open("a") as out, step.open() as rows:
        next(rows, None)
        for row in rows:
            out.write(row)
            t, _, ms, ok, _ = row.rstrip("\n").split(",", 4)
            if float(t) >= first + SETTLE_S:
                times.append(float(ms))
                failed += ok != "1"
    with Path(f"{log}.stages.csv").open("a") as out:
        for row in stages:
            t, name, rate, users = row.split(",")
            out.write(f"{t},{stage if name == 'steady' else name},{rate},{users}\n")
    step.unlink(missing_ok=True)
    Path(f"{step}.stages.csv").unlink(missing_ok=True)
    if not times:
        return float("inf"), 1.0
    times.sort()
    return times[min(len(times) - 1, int(0.95 * len(times)))], failed / len(times)


def _warm_up(url: str, requests: int = 20) -> None:
    """A few searches, one at a time, before a system's first step: the 28 Nov and 30 Nov runs saw a fresh
    stack's first seconds (page faults of a memory-mapped index, the dispatcher's training) end a ramp at its
    first step. Not recorded; new queries each (the query-vector cache must not answer them later)."""
    for i in range(requests):
        body = {"query": f"warm up {i} {time.time_ns()}", "limit": 20, "mode": "vector"}
        httpx.post(f"{url}/api/v1/search", json=body, timeout=60)


def _metrics(url: str) -> dict[str, Any]:
    return batch_histograms(httpx.get(f"{url}/metrics", timeout=30).text)


def _get_json(url: str, params: dict[str, Any] | None = None) -> Any:
    try:
        return httpx.get(url, params=params, timeout=30).json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def rates_of(text: str) -> list[float]:
    return [float(rate) for rate in text.split(",") if rate.strip()]


def run(plan: Plan, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    sampler = ProcessSampler(out / "processes.csv", database=stack.DB_NAME)
    sampler.start()
    run = Run(out, plan, sampler)
    run.log(f"load run into {out} ({'quick' if plan is QUICK else 'medium' if plan is MEDIUM else 'full'})")
    counts = stack.ensure_database(run.log)
    tags = stack.ensure_models(run.log)
    indexes = {key: stack.ensure_index(stack.MODELS[key], tags[key], run.log) for key in plan.models}
    meta: dict[str, Any] = {
        "plan": plan.__dict__,
        "catalog": counts,
        "models": {
            key: {"tag": tags[key], "label": stack.MODELS[key].label, "index": indexes[key]} for key in plan.models
        },
        "vitrine_settings": VITRINE_SETTINGS,
        "baseline_settings": BASELINE_SETTINGS,
        "mix_rate": MIX_RATE,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    redis, redis_url = stack.start_redis(out / "redis")
    sampler.track("redis", redis.pid)
    logs = out / "logs"
    served: list[stack.Stack] = []

    def serve(target: stack.Stack) -> stack.Stack:
        served.append(target)
        sampler.track(target.name, target.process.pid)
        return target

    def stop_all() -> None:
        while served:
            target = served.pop()
            target.stop()
            sampler.untrack(target.name)

    try:
        for key in plan.models:
            model, tag = stack.MODELS[key], tags[key]
            run.limit(model, tag)

            # The uncached ramps, side by side: the baseline; vitrine as tuned here (the headline); and, in the
            # full run for ViT, vitrine with the code's default settings and vitrine with the dispatcher fix.
            stack.reset_user_state()
            baseline = stack.serve_baseline(f"baseline-{key}", model, tag, logs, BASELINE_SETTINGS)
            targets = [RampTarget(serve(baseline), f"baseline-{key}-ramp")]
            variants = [("vitrine-nocache", "service:Vitrine", VITRINE_SETTINGS)]
            if plan.fix and key == "vit":
                variants += [
                    ("vitrine-in-process-index-nocache", "service:Vitrine", {**VITRINE_SETTINGS, **IN_PROCESS_INDEX}),
                    ("vitrine-stock-nocache", "service:Vitrine", {**VITRINE_SETTINGS, **STOCK_DISPATCHER}),
                ]
            for label, app, settings in variants:
                nocache = {**settings, "API_ENABLE_CACHE": "false"}
                target = serve(stack.serve_vitrine(f"{label}-{key}", model, tag, redis_url, nocache, logs, app=app))
                targets.append(RampTarget(target, f"{label}-{key}-ramp"))
            try:
                run.ramp(targets, key, rates_of(plan.ramp_rates[key]), plan.step_s)
                if plan.burst and key == "vit":
                    # Back to a trickle after the ramp's overload: does latency return to the first step's?
                    time.sleep(BURST_REST_S)
                    for target in targets:
                        name = target.phase.removesuffix("-ramp") + "-cooldown"
                        trickle = ["--workload", "uncached-search", "--shape", "steady", "--rate", "3",
                                   "--warmup-s", "0", "--duration", "25", "--search-mode", "vector"]  # fmt: skip
                        run.locust(name, target.stack, key, trickle, budget_s=25)
            finally:
                stop_all()

            if plan.burst and key == "vit":
                # A burst on fresh stacks (BentoML #3630/#3664): a trickle, 10 s at several times capacity,
                # the trickle again; vitrine as tuned here, and with BentoML's stock dispatcher.
                nocache = {**VITRINE_SETTINGS, "API_ENABLE_CACHE": "false"}
                bursts = [("vitrine-nocache", nocache), ("vitrine-stock-nocache", {**nocache, **STOCK_DISPATCHER})]
                try:
                    fresh = [serve(stack.serve_vitrine(f"{label}-{key}", model, tag, redis_url, settings, logs,
                                                       app="service:Vitrine"))
                             for label, settings in bursts]  # fmt: skip
                    for (label, _), target in zip(bursts, fresh, strict=True):
                        burst = ["--workload", "uncached-search", "--shape", "spike", "--rate", "3",
                                 "--spike-rate", "60", "--before-s", "25", "--spike-s", "10", "--after-s", "70",
                                 "--search-mode", "vector"]  # fmt: skip
                        run.locust(f"{label}-{key}-burst", target, key, burst, budget_s=105, poll_s=5)
                finally:
                    stop_all()

            # The shop's mix with caching on.
            stack.reset_user_state()
            cached = {**VITRINE_SETTINGS, "API_ENABLE_CACHE": "true"}
            target = serve(stack.serve_vitrine(f"vitrine-{key}", model, tag, redis_url, cached, logs,
                                               app="service:Vitrine"))  # fmt: skip
            try:
                steady = ["--workload", "mix", "--shape", "steady", "--rate", f"{MIX_RATE:g}",
                          "--warmup-s", f"{plan.mix_warmup_s:g}", "--duration", f"{plan.mix_s:g}"]  # fmt: skip
                run.locust(f"vitrine-{key}-mix", target, key, [*steady, "--search-mode", "vector"],
                           budget_s=plan.mix_warmup_s + plan.mix_s)  # fmt: skip
                if plan.bunched_s:
                    # The same mix with every user firing at once, once a second: one wave of MIX_RATE requests.
                    bunched = ["--workload", "mix", "--shape", "steady", "--rate", f"{MIX_RATE:g}",
                               "--per-user-rate", "1", "--arrivals", "bunched", "--warmup-s", "10",
                               "--duration", f"{plan.bunched_s:g}", "--search-mode", "vector"]  # fmt: skip
                    run.locust(f"vitrine-{key}-mix-bunched", target, key, bunched, budget_s=10 + plan.bunched_s)
                if plan.hybrid_s and key == "vit":
                    hybrid = ["--workload", "mix", "--shape", "steady", "--rate", f"{MIX_RATE:g}",
                              "--warmup-s", "10", "--duration", f"{plan.hybrid_s:g}"]  # fmt: skip
                    run.locust(f"vitrine-{key}-mix-hybrid", target, key, hybrid, budget_s=10 + plan.hybrid_s)
                if plan.spike and key == "vit":
                    spike = ["--workload", "mix", "--shape", "spike", "--rate", "30", "--spike-rate", "120",
                             "--before-s", "20", "--spike-s", "15", "--after-s", "30"]  # fmt: skip
                    run.locust(f"vitrine-{key}-spike", target, key, spike, budget_s=65)
            finally:
                stop_all()
            run.save(meta)
    finally:
        stop_all()
        redis.stop()
        sampler.stop()
        meta["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
        run.save(meta)
    run.log("building the report")
    summary = build_report(out)
    run.log(f"report: {summary}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ViT-B-32 only, fewer and shorter steps (~6 min)")
    parser.add_argument("--medium", action="store_true", help="both towers, shorter steps, no burst/spike (~20 min)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    plan, suffix = (QUICK, "-quick") if args.quick else (MEDIUM, "-medium") if args.medium else (FULL, "")
    out = args.out or REPO / "reports" / "loadtest" / f"{stamp}{suffix}"
    run(plan, out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
