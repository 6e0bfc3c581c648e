"""Smoke tests of the load-test tooling (no load is run): the workload, the metrics parsing, the report builder
on a small made-up run, and that locust can load the locustfile."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loadtests.monitor import batch_histograms, histogram_delta
from loadtests.report import build_report
from loadtests.workload import DistinctQueries, ZipfSampler, feedback_event, shopper_queries

REPO = Path(__file__).resolve().parents[2]


def test_shopper_queries_are_distinct_and_zipf_draws_favour_the_head() -> None:
    queries = shopper_queries(400)
    assert len(queries) == len(set(queries)) == 400
    sampler = ZipfSampler(queries, s=1.0)
    rng = random.Random(1)
    draws = [sampler.draw(rng) for _ in range(20_000)]
    head = sum(1 for q in draws if q in set(queries[:10])) / len(draws)
    assert head == pytest.approx(sampler.share_of_top(10), abs=0.02)
    assert 0.3 < head < 0.6  # popular queries repeat, the tail is still seen
    assert len(set(draws)) > 300


def test_distinct_queries_never_repeat() -> None:
    source = DistinctQueries(seed=3)
    seen = [next(source) for _ in range(5000)]
    assert len(set(seen)) == 5000


def test_feedback_events_carry_a_rating_only_when_rated() -> None:
    rng = random.Random(2)
    events = [feedback_event(rng, 7, 1163, "search", 3) for _ in range(2000)]
    kinds = {str(event["interaction_type"]) for event in events}
    assert {"view", "click", "add_to_cart", "purchase", "rating"} <= kinds
    assert all(("rating" in event) == (event["interaction_type"] == "rating") for event in events)
    assert sum(event["interaction_type"] == "view" for event in events) > sum(
        event["interaction_type"] == "purchase" for event in events
    )


METRICS = """# HELP vitrine_encoder_batch_size Items in each batch the encoder ran, by tower.
# TYPE vitrine_encoder_batch_size histogram
vitrine_encoder_batch_size_bucket{le="1.0",tower="text"} %d
vitrine_encoder_batch_size_bucket{le="2.0",tower="text"} %d
vitrine_encoder_batch_size_bucket{le="4.0",tower="text"} %d
vitrine_encoder_batch_size_bucket{le="+Inf",tower="text"} %d
vitrine_encoder_batch_size_count{tower="text"} %d
vitrine_encoder_batch_size_sum{tower="text"} %d
"""


def test_batch_histogram_deltas_per_phase() -> None:
    before = batch_histograms(METRICS % (5, 5, 5, 5, 5, 5))
    after = batch_histograms(METRICS % (7, 10, 12, 12, 12, 5 + 2 + 3 * 2 + 2 * 4))
    delta = histogram_delta(before, after)
    entry = delta["vitrine_encoder_batch_size{tower=text}"]
    assert [b["batches"] for b in entry["buckets"]] == [2, 3, 2, 0]
    assert entry["batches"] == 7
    assert entry["mean"] == pytest.approx((2 + 6 + 8) / 7)


def _requests(path: Path, stages: list[tuple[str, float, float]], latency: dict[str, float], t0: float) -> float:
    """Writes a request log at each stage's rate; `latency` maps stage name -> ms. Returns the end time."""
    rng = random.Random(4)
    t = t0
    with path.open("w", newline="") as handle, Path(f"{path}.stages.csv").open("w") as stage_file:
        writer = csv.writer(handle)
        writer.writerow(["t", "name", "ms", "ok", "detail"])
        stage_file.write("t,stage,rate,users\n")
        for name, seconds, rate in stages:
            stage_file.write(f"{t:.3f},{name},{rate:g},{int(rate * 2)}\n")
            for i in range(int(seconds * rate)):
                kind = ("search (uncached)", "search (cached)", "recommend (uncached)", "feedback")[i % 4]
                writer.writerow([f"{t + i / rate:.3f}", kind, f"{latency[name] * rng.uniform(0.8, 1.2):.2f}", 1, ""])
            t += seconds
    return t


def test_report_builds_from_a_small_run(tmp_path: Path) -> None:
    (tmp_path / "requests").mkdir()
    t0 = 1_800_000_000.0
    phases = []
    for system, knee in (("baseline-vit", 15), ("vitrine-nocache-vit", 45)):
        rates = [10, 20, 30, 40, 50, 60]
        stages = [(f"ramp {r}", 10.0, float(r)) for r in rates]
        end = _requests(
            tmp_path / "requests" / f"{system}-ramp.csv",
            stages,
            {f"ramp {r}": (60.0 if r <= knee else 400.0) for r in rates},
            t0,
        )
        phases.append({"name": f"{system}-ramp", "system": system, "model": "vit", "started": t0, "ended": end})
    end = _requests(
        tmp_path / "requests" / "vitrine-vit-mix.csv", [("warmup", 5, 50.0), ("steady", 20, 50.0)],
        {"warmup": 50.0, "steady": 4.0}, t0,
    )  # fmt: skip
    phases.append(
        {
            "name": "vitrine-vit-mix",
            "system": "vitrine-vit",
            "model": "vit",
            "started": t0,
            "ended": end,
            "batches": histogram_delta({}, batch_histograms(METRICS % (7, 10, 12, 12, 12, 21))),
            "performance": {"operations": {"encode": {"count": 3, "p50_ms": 20, "p95_ms": 30, "p99_ms": 31}}},
        }
    )
    meta = {
        "plan": {"step_s": 10},
        "catalog": {"real": 1099, "demo": 99000, "total": 100099},
        "models": {"vit": {"tag": "vitrine-encoder:x", "label": "ViT-B-32 text tower", "index": "hnsw"}},
        "vitrine_settings": {},
        "baseline_settings": {},
        "mix_rate": 50,
        "phases": phases,
    }
    (tmp_path / "phases.json").write_text(json.dumps(meta))
    limit = {"rows": [], "limit_qps": 80.0, "limit_batch_size": 16, "bounded_qps": 60.0, "bounded_batch_size": 4,
             "bound_ms": 75.0}  # fmt: skip
    (tmp_path / "limit-vit.json").write_text(json.dumps(limit))

    summary = build_report(tmp_path).read_text()

    assert "40.0 / 10.0 req/s = **4.00x** ✅" in summary  # 40 is the last step under 150 ms, baseline 10
    assert "40.0 / 80.0 q/s = **50%** ✅" in summary
    # interpolated: p95 crosses 150 ms between the 40 and 50 req/s steps (~72 -> ~480 ms)
    assert "interpolated where p95 crosses 150 ms" in summary
    assert "cached search p95" in summary and "feedback p95" in summary
    assert (tmp_path / "plots" / "latency_vs_load.png").stat().st_size > 0
    assert (tmp_path / "plots" / "batch_sizes.png").stat().st_size > 0
    with (tmp_path / "tables" / "ramp_steps.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 12


def test_locust_loads_the_locustfile() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "locust"), "-f", str(REPO / "loadtests" / "locustfile.py"), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "ShopperUser" in done.stdout and "SearchUser" in done.stdout


def test_recovery_windows_go_by_send_time() -> None:
    from loadtests.report import Requests, Stage, recovery

    t, ms = [], []
    for i in range(60):  # before: 3 req/s at 100 ms
        t.append(i / 3 + 0.1), ms.append(100.0)
    for i in range(100):  # the burst, sent in [20, 30): answered up to 9 s later, i.e. during "after"
        t.append(20 + i / 10 + 9.0), ms.append(9000.0)
    for i in range(180):  # after: 3 req/s at 110 ms
        t.append(30 + i / 3 + 0.11), ms.append(110.0)
    n = len(t)
    requests = Requests(
        np.asarray(t), np.asarray(["search (uncached)"] * n, dtype=object), np.asarray(ms),
        np.ones(n, dtype=bool), np.asarray([""] * n, dtype=object),
    )  # fmt: skip
    stages = [Stage("before", 3, 6, 0, 20), Stage("spike", 10, 20, 20, 30), Stage("after", 3, 6, 30, 90)]
    found = recovery(requests, stages)
    assert found is not None
    assert found["spike"].count == 100
    assert [w["p50"] for w in found["after_windows"]] == [pytest.approx(110.0)] * 6
    assert found["recovered_after_s"] == 0
