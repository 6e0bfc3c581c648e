"""Load for vitrine (and the baseline): a shop's traffic mix or uncached search, in three load shapes.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:3000 --shape steady --rate 50 --duration 120
    locust -f loadtests/locustfile.py --headless --host ... --workload uncached-search --shape ramp --rates 10,20,40
    locust -f loadtests/locustfile.py --headless --host ... --shape spike --rate 20 --spike-rate 100 --spike-s 10

Workloads (`--workload`):
    mix              ShopperUser: search ~60% (queries drawn Zipf-like from a few hundred shopper queries, some
                     with filters or a second page), recommend ~25% (feed, similar, search, category), feedback
                     ~15% (view > click > add_to_cart > like > purchase > share > rating), user ids from a pool
    uncached-search  SearchUser: search only, every query new (loadtests/workload.py DistinctQueries), so each
                     request encodes its query even where caching is on

Offered load is a rate, not a number of users: every simulated user starts its tasks at exponentially
distributed intervals averaging 1 / `--per-user-rate` (2 s), measured from the previous start, not from the
previous answer, and the shape sets users = rate / per-user rate; so arrivals are Poisson, as in a shop,
and the offered rate holds while latency stays well under the interval. (locust's constant_throughput
would not do: once a slow spell makes every user finish together, they all start together from then on,
and the load arrives in waves every 2 s; measured here, that alone took p50 at 10 req/s from ~70 to 500 ms.)

Arrivals (`--arrivals bunched`): every user starts a task at the same tick of a shared clock, every
1 / `--per-user-rate` s, so the whole rate arrives as one wave (with `--per-user-rate 1`: 50 requests within
milliseconds, every second, at 50 req/s): the burst test of loadtests/README.md.

Shapes (`--shape`): steady (a warm-up, then `--rate` for `--duration` s), ramp (`--rates` one after another,
`--step-s` each; with `--stop-p95-ms` it stops after the first step whose p95 exceeds that), spike (`--rate`,
then `--spike-rate` for `--spike-s`, then `--rate` again for `--after-s`).

Every answer is checked (status and shape), so a wrong answer counts as a failure. Searches and
recommendations are named "search (cached)" / "search (uncached)" by the answer's `cached` flag.
`--request-log FILE` writes one CSV row per request (end time, name, ms, ok, detail) and FILE.stages.csv
with the start of each stage and an "end" row, which is what loadtests/report.py reads.
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, events, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtests.workload import (
    RECOMMEND_CONTEXTS,
    DistinctQueries,
    UserPool,
    ZipfSampler,
    feedback_event,
    shopper_queries,
    weighted,
)

QUERIES = ZipfSampler(shopper_queries(400), s=1.0)
# A new seed per run: the query-embedding cache lives in Redis and would otherwise remember the last run's.
DISTINCT = DistinctQueries(seed=random.SystemRandom().randrange(2**32))
USERS = UserPool()
SEED_QUERIES = ("tshirt", "shoes", "dress", "backpack", "jacket", "heels", "watch", "shorts", "handbag", "cap")
POOL: dict[str, list[Any]] = {"products": [], "categories": []}  # filled at test start from real answers
RECOMMEND_STRATEGIES = {"personalized", "cold_start"}
SPAWN_RATE = 1000.0


# --- options --------------------------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("vitrine")
    group.add_argument("--workload", choices=("mix", "uncached-search"), default="mix")
    group.add_argument("--shape", choices=("steady", "ramp", "spike"), default="steady")
    group.add_argument("--rate", type=float, default=50.0, help="requests/s (steady; spike: before and after)")
    group.add_argument("--duration", type=float, default=120.0, help="steady: seconds measured")
    group.add_argument("--warmup-s", type=float, default=20.0, help="steady: seconds at --rate before measuring")
    group.add_argument("--rates", default="10,20,30,40,50,60,80,100", help="ramp: requests/s per step")
    group.add_argument("--step-s", type=float, default=20.0, help="ramp: seconds per step")
    group.add_argument("--stop-p95-ms", type=float, default=0.0, help="ramp: stop after a step over this p95")
    group.add_argument("--spike-rate", type=float, default=150.0)
    group.add_argument("--before-s", type=float, default=20.0)
    group.add_argument("--spike-s", type=float, default=10.0)
    group.add_argument("--after-s", type=float, default=60.0)
    group.add_argument("--per-user-rate", type=float, default=0.5, help="tasks/s of one simulated user")
    group.add_argument("--arrivals", choices=("poisson", "bunched"), default="poisson",
                       help="poisson: open loop; bunched: every user at once, every 1/--per-user-rate s")  # fmt: skip
    group.add_argument("--search-mode", default="", help="vector|hybrid|keyword; empty: the server's default")
    group.add_argument("--api-key", default="", help="sent as X-API-Key")
    group.add_argument("--request-log", default="", help="CSV file: one row per request")


def _options_of(environment: Any) -> Any:
    return environment.parsed_options


# --- request log ----------------------------------------------------------------------------------------------


class RequestLog:
    def __init__(self) -> None:
        self._writer: Any = None
        self._handle: Any = None
        self._stages: Any = None
        self.step_times: list[float] = []  # response times of the current stage, for --stop-p95-ms
        self.step_failures = 0
        self._ended = False

    def open(self, path: str) -> None:
        if not path:
            return
        self._handle = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed at test stop
        self._writer = csv.writer(self._handle)
        self._writer.writerow(["t", "name", "ms", "ok", "detail"])
        self._stages = open(f"{path}.stages.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._stages.write("t,stage,rate,users\n")

    def request(self, name: str, ms: float, ok: bool, detail: str) -> None:
        self.step_times.append(ms)
        self.step_failures += not ok
        if self._writer is not None:
            self._writer.writerow([f"{time.time():.3f}", name, f"{ms:.2f}", int(ok), detail])

    def stage(self, name: str, rate: float, users: int) -> None:
        self.step_times, self.step_failures = [], 0
        if self._stages is not None and not self._ended:
            self._ended = name == "end"
            self._stages.write(f"{time.time():.3f},{name},{rate:g},{users}\n")
            self._stages.flush()

    def close(self) -> None:
        for handle in (self._handle, self._stages):
            if handle is not None:
                handle.close()
        self._handle = self._stages = self._writer = None


LOG = RequestLog()


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Any, context: dict[str, Any], **_: Any) -> None:
    LOG.request(name, response_time, exception is None, str(context.get("detail", "")))


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    # At init, not test start: the shape's first tick (which logs the first stage) may come before test_start.
    if environment.parsed_options is not None:
        LOG.open(environment.parsed_options.request_log)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    _fill_pool(environment.host, _options_of(environment))


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    LOG.close()


def _fill_pool(host: str, options: Any) -> None:
    """Product ids and category names from real answers, for feedback and recommend requests."""
    products: set[int] = set()
    categories: set[str] = set()
    for query in SEED_QUERIES:
        body = json.dumps({"query": query, "limit": 50, "mode": "vector"}).encode()
        request = urllib.request.Request(f"{host}/api/v1/search", data=body, headers=_headers(options))
        with urllib.request.urlopen(request, timeout=60) as answer:
            for result in json.load(answer)["results"]:
                products.add(int(result["product_id"]))
                if result.get("category_name"):
                    categories.add(str(result["category_name"]))
    if not products:
        raise RuntimeError(f"{host} answered no products to the seed queries: is the catalog loaded?")
    POOL["products"], POOL["categories"] = sorted(products), sorted(categories) or ["Tshirts"]


def _headers(options: Any) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if options.api_key:
        headers["X-API-Key"] = options.api_key
    return headers


# --- users ----------------------------------------------------------------------------------------------------


class _Shopper(FastHttpUser):
    abstract = True
    network_timeout = 30.0
    connection_timeout = 10.0

    def wait_time(self) -> float:
        """Poisson arrivals: the next start an exponential interval after the previous start (a user that fell
        behind catches up by at most one interval, rather than in a burst). Bunched arrivals: every user starts
        at the next tick of one shared clock (see `_next_tick`)."""
        now = time.monotonic()
        if self.bunched:
            return _next_tick(now, self.per_user_rate) - now
        mean = 1.0 / self.per_user_rate
        self.next_start = max(self.next_start, now - mean) + self.rng.expovariate(1.0 / mean)
        return max(0.0, self.next_start - now)

    def on_start(self) -> None:
        self.rng = random.Random()
        options = _options_of(self.environment)
        self.per_user_rate = float(options.per_user_rate)
        self.mode = options.search_mode or None
        self.auth = {"X-API-Key": options.api_key} if options.api_key else {}
        self.user_id = USERS.draw(self.rng)
        self.seen: list[int] = []
        self.bunched = options.arrivals == "bunched"
        # The first start, too, an exponential interval away: a step up in users is not a burst.
        self.next_start = time.monotonic() + self.rng.expovariate(self.per_user_rate)
        if self.bunched:
            self.next_start = _next_tick(time.monotonic(), self.per_user_rate)
        gevent.sleep(self.next_start - time.monotonic())

    def search(self, query: str, *, filters: dict[str, Any] | None = None, limit: int = 20, offset: int = 0) -> None:
        body: dict[str, Any] = {"query": query, "limit": limit, "offset": offset}
        if filters:
            body["filters"] = filters
        if self.mode:
            body["mode"] = self.mode
        with self.rest("POST", "/api/v1/search", json=body, headers=self.auth, name="search") as answer:
            js = answer.js
            if js is None:
                return  # already failed: not JSON
            assert answer.status_code == 200, f"search: HTTP {answer.status_code},"
            results = js["results"]
            assert isinstance(results, list) and len(results) <= limit, "search: results is not a page,"
            assert isinstance(js["total"], int) and js["total"] >= len(results), "search: bad total,"
            for result in results:
                assert isinstance(result["product_id"], int) and result["product_name"], "search: bad result,"
            if not results and not filters and offset == 0 and self.mode == "vector":
                raise AssertionError("search: a vector search without filters found nothing,")
            cached = bool(js.get("cached", False))
            answer.request_meta["name"] = f"search ({'cached' if cached else 'uncached'})"
            self.seen = [int(r["product_id"]) for r in results[:10]] or self.seen

    def product(self) -> int:
        return (
            self.rng.choice(self.seen) if self.seen and self.rng.random() < 0.8 else self.rng.choice(POOL["products"])
        )


class ShopperUser(_Shopper):
    """The shop's traffic mix; now and then the simulated user becomes another shopper."""

    @task(60)
    def search_products(self) -> None:
        self._maybe_new_shopper()
        rng = self.rng
        filters: dict[str, Any] | None = None
        if rng.random() < 0.2:
            filters = rng.choice(
                (
                    {"max_price": rng.choice((25, 50, 75, 100))},
                    {"min_price": 20, "max_price": rng.choice((60, 120))},
                    {"in_stock": True},
                    {"categories": [rng.choice(POOL["categories"])]},
                )
            )
        limit = 20 if rng.random() < 0.8 else rng.choice((10, 40))
        page = 0 if rng.random() < 0.85 else rng.choice((1, 1, 2))
        self.search(QUERIES.draw(rng), filters=filters, limit=limit, offset=page * limit)

    @task(25)
    def recommend(self) -> None:
        self._maybe_new_shopper()
        context = str(weighted(self.rng, RECOMMEND_CONTEXTS))
        body: dict[str, Any] = {"user_id": self.user_id, "context": context, "limit": 20}
        if context == "similar":
            body["product_id"] = self.product()
        elif context == "search":
            body["query"] = QUERIES.draw(self.rng)
        elif context == "category":
            body["category"] = self.rng.choice(POOL["categories"])
        with self.rest("POST", "/api/v1/recommend", json=body, headers=self.auth, name="recommend") as answer:
            js = answer.js
            if js is None:
                return
            assert answer.status_code == 200, f"recommend: HTTP {answer.status_code},"
            assert js["context"] == context and js["user_id"] == self.user_id, "recommend: not this request's answer,"
            assert js["strategy"] in RECOMMEND_STRATEGIES, "recommend: unknown strategy,"
            results = js["results"]
            assert isinstance(results, list) and len(results) <= 20, "recommend: results is not a page,"
            for result in results:
                assert isinstance(result["product_id"], int), "recommend: bad result,"
            cached = bool(js.get("cached", False))
            answer.request_meta["name"] = f"recommend ({'cached' if cached else 'uncached'})"
            answer.request_meta["context"] = {"detail": f"{context}/{js['strategy']}"}
            if results:
                self.seen = [int(r["product_id"]) for r in results[:10]]

    @task(15)
    def feedback(self) -> None:
        position = self.rng.randrange(20)
        event = feedback_event(self.rng, self.user_id, self.product(), self.rng.choice(("search", "feed")), position)
        with self.rest("POST", "/api/v1/feedback", json=event, headers=self.auth, name="feedback") as answer:
            js = answer.js
            if js is None:
                return
            assert answer.status_code == 200, f"feedback: HTTP {answer.status_code},"
            assert js["status"] == "accepted" and isinstance(js["interaction_id"], int), "feedback: not accepted,"
            assert js["product_id"] == event["product_id"], "feedback: not this event's answer,"
            answer.request_meta["context"] = {"detail": str(event["interaction_type"])}

    def _maybe_new_shopper(self) -> None:
        if self.rng.random() < 0.05:
            self.user_id, self.seen = USERS.draw(self.rng), []


class SearchUser(_Shopper):
    """Uncached search: a new query every time, no filters, first page of 20."""

    @task
    def search_new_query(self) -> None:
        self.search(next(DISTINCT))


# --- load shapes ----------------------------------------------------------------------------------------------


def _next_tick(now: float, per_user_rate: float) -> float:
    """The next multiple of the user's interval on the shared monotonic clock: all users fire together, within
    milliseconds, every interval. That is what locust's constant_throughput(1) users of a storefront do once a
    slow spell has lined them up (the issue's burst test), made certain rather than left to chance."""
    period = 1.0 / per_user_rate
    return (math.floor(now / period) + 1) * period


class RateShape(LoadTestShape):
    """steady / ramp / spike at request rates (see the module docstring); stages are logged for the report."""

    def __init__(self) -> None:
        super().__init__()
        self._stages: list[tuple[str, float, float]] | None = None  # (name, seconds, rate)
        self._current = -1

    def stages(self) -> list[tuple[str, float, float]]:
        if self._stages is None:
            assert self.runner is not None
            options = _options_of(self.runner.environment)
            self._stages = plan(options)
        return self._stages

    def tick(self) -> tuple[int, float, list[type[FastHttpUser]]] | None:
        assert self.runner is not None
        options = _options_of(self.runner.environment)
        elapsed = self.get_run_time()
        stages = self.stages()
        index, start = 0, 0.0
        while index < len(stages) and elapsed >= start + stages[index][1]:
            start += stages[index][1]
            index += 1
        if index >= len(stages):
            LOG.stage("end", 0, 0)  # the planned end; stopping the users takes a while longer
            return None
        name, _, rate = stages[index]
        users = max(1, math.ceil(rate / options.per_user_rate))
        if index != self._current:
            if self._current >= 0 and self._over_limit(options):
                return None
            self._current = index
            LOG.stage(name, rate, users)
        user_class = ShopperUser if options.workload == "mix" else SearchUser
        # Users are added or removed at once: each spreads its own first start (see on_start), and after a
        # spike the surplus must stop now, not at a spawn rate's pace while the spike goes on.
        return users, SPAWN_RATE, [user_class]

    def _over_limit(self, options: Any) -> bool:
        """ramp --stop-p95-ms: the stage that just ended was far past saturation; later ones would only queue."""
        if options.shape != "ramp" or options.stop_p95_ms <= 0 or not LOG.step_times:
            return False
        times = sorted(LOG.step_times)
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        return p95 > options.stop_p95_ms or LOG.step_failures > 0.2 * len(times)


def plan(options: Any) -> list[tuple[str, float, float]]:
    """The stages of a shape: (name, seconds, requests/s)."""
    if options.shape == "steady":
        warmup = [("warmup", options.warmup_s, options.rate)] if options.warmup_s > 0 else []
        return [*warmup, ("steady", options.duration, options.rate)]
    if options.shape == "ramp":
        rates = [float(rate) for rate in str(options.rates).split(",") if rate.strip()]
        return [(f"ramp {rate:g}", options.step_s, rate) for rate in rates]
    return [
        ("before", options.before_s, options.rate),
        ("spike", options.spike_s, options.spike_rate),
        ("after", options.after_s, options.rate),
    ]
