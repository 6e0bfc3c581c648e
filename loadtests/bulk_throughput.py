"""Bulk endpoints against the single ones: items/s for the same work, against a running stack.

    .venv/bin/python loadtests/bulk_throughput.py --url http://127.0.0.1:3000 --api-key KEY [--rounds 3]

Per round, with fresh words so no cache can answer (results, query vectors, recommendations):
    search     100 queries (hybrid, the default mode): one POST /api/v1/search/batch, against the same 100
               through POST /api/v1/search one at a time and 8 at a time
    recommend  200 requests (half context=search with a query, half context=similar with a product), new
               user ids: one POST /api/v1/recommend/batch against the same through /api/v1/recommend
Rounds alternate the order of the ways, so a busy minute on the shared box does not favour one of them.
Prints a Markdown table (median over rounds) for docs/scaling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

WORDS = ["black", "white", "red", "blue", "green", "linen", "leather", "denim", "silk", "wool", "summer",
         "winter", "running", "casual", "formal", "slim", "oversized", "vintage", "floral", "striped"]  # fmt: skip
ITEMS = ["dress", "boots", "jacket", "shirt", "jeans", "sneakers", "skirt", "coat", "scarf", "bag", "sandals",
         "hoodie", "shorts", "blazer", "heels", "sweater", "t-shirt", "trousers", "hat", "belt"]  # fmt: skip


def fresh_queries(n: int, rng: random.Random) -> list[str]:
    nonce = uuid.uuid4().hex[:5]  # an unknown word: a new text to encode, while the known words still match
    return [f"{rng.choice(WORDS)} {rng.choice(ITEMS)} {nonce}{i}" for i in range(n)]


async def singles(client: httpx.AsyncClient, path: str, bodies: list[dict[str, Any]], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(body: dict[str, Any]) -> None:
        nonlocal ok
        async with gate:
            response = await client.post(path, json=body)
            ok += response.status_code == 200

    await asyncio.gather(*(one(body) for body in bodies))
    return ok


async def batch(client: httpx.AsyncClient, path: str, key: str, bodies: list[dict[str, Any]]) -> int:
    response = await client.post(path, json={key: bodies})
    if response.status_code != 200:  # the whole batch refused (a runner shed it): every item failed
        return 0
    return sum(item["status_code"] == 200 for item in response.json()["results"])


FAILED: dict[str, int] = {}


async def timed(label: str, work: Callable[[], Awaitable[int]], n: int) -> float:
    """Items answered 200 per second; the others are counted in FAILED (503s when the box sheds load)."""
    started = time.perf_counter()
    ok = await work()
    elapsed = time.perf_counter() - started
    FAILED[label] = FAILED.get(label, 0) + n - ok
    return ok / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--recommendations", type=int, default=200)
    args = parser.parse_args()
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    rng = random.Random(7)
    rates: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=args.url, timeout=120, headers=headers) as client:
        probe = await client.post("/api/v1/search", json={"query": "shirt", "mode": "vector", "limit": 50})
        product_ids = [r["product_id"] for r in probe.json()["results"]]

        def search_bodies() -> list[dict[str, Any]]:
            return [{"query": q, "limit": 20} for q in fresh_queries(args.searches, rng)]

        def recommend_bodies() -> list[dict[str, Any]]:
            users = rng.randrange(10**9, 2 * 10**9)  # new users: no cached recommendations, no history
            half = args.recommendations // 2
            queries = fresh_queries(half, rng)
            return [
                {"user_id": users + i, "context": "search", "query": queries[i], "limit": 20} for i in range(half)
            ] + [
                {"user_id": users + half + i, "context": "similar", "product_id": rng.choice(product_ids)}
                for i in range(args.recommendations - half)
            ]

        for round_no in range(args.rounds):
            ways: list[tuple[str, Callable[[], Awaitable[int]], int]] = []
            for kind, path, key, make, n in (
                ("search", "/api/v1/search", "queries", search_bodies, args.searches),
                ("recommend", "/api/v1/recommend", "requests", recommend_bodies, args.recommendations),
            ):
                for label, concurrency in (("one at a time", 1), ("8 at a time", 8)):
                    work: Callable[[], Awaitable[int]] = functools.partial(singles, client, path, make(), concurrency)
                    ways.append((f"{kind}: single endpoint, {label}", work, n))
                ways.append(
                    (
                        f"{kind}: batch endpoint, one request",
                        functools.partial(batch, client, f"{path}/batch", key, make()),
                        n,
                    )
                )
            order = ways if round_no % 2 == 0 else list(reversed(ways))
            for label, work, n in order:
                rate = await timed(label, work, n)
                rates.setdefault(label, []).append(rate)
                print(f"round {round_no + 1}: {label}: {rate:.1f} items/s ({FAILED[label]} failed so far)", flush=True)
    print()
    print("| work | items/s (median of rounds) | rounds | items not answered 200 |")
    print("|---|---:|---|---:|")
    for label, values in rates.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {label} | {statistics.median(values):.1f} | {rounds} | {FAILED.get(label, 0)} |")


if __name__ == "__main__":
    asyncio.run(main())
