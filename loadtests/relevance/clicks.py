"""What learning from the shop can add: simulated shoppers click the benchmark's pages, the search learns from it.

The in-process stack of tune.py (real keyword leg, MiniLM vectors, hybrid pipeline). For each query of the chosen
splits, `--shoppers` simulated shoppers see its cold first page (20 products) and behave as the click model assumes
(domain/click_model.py): a shopper looks at rank r with probability 1 / r, and clicks what they look at with a
probability set by the judge's grade (2: 0.6, 1: 0.2, 0: 0.02); a click on a grade-2 product goes to the bag one
time in three. Their events become the learned table (`learn`, the service's own code, with its defaults: nothing
here is tuned), and every query is scored again through the learned pipeline.

Not a held-out measurement: the shoppers' taste is the judge's grades, so this says how much of the truth the lever
recovers from position-biased clicks on the first page, and what a learned query gains (or loses) in NDCG@10. The
frozen split (hard-frozen) is left out on purpose.

    .venv/bin/python loadtests/relevance/clicks.py --split dev,test,fresh,hard-tune --shoppers 30
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import judge  # noqa: E402
import tune  # noqa: E402

from adapters.colour_library import colour_lexicon  # noqa: E402
from adapters.db.keyword_search import SqlKeywordSearch  # noqa: E402
from adapters.db.products import fetch_products  # noqa: E402
from adapters.dictionary import english_words  # noqa: E402
from adapters.product_types import CatalogProductTypes  # noqa: E402
from adapters.shop_words import shop_words  # noqa: E402
from domain.cache_keys import normalise_query  # noqa: E402
from domain.click_model import NOTHING_LEARNED, LearnedRanking, ShopperChoice, learn  # noqa: E402
from domain.interactions import InteractionType  # noqa: E402
from domain.search import SearchPipeline  # noqa: E402

PAGE = 20
CLICK_CHANCE = {2: 0.6, 1: 0.2, 0: 0.02}
CART_CHANCE = 1 / 3


class Table:
    def __init__(self) -> None:
        self.table: LearnedRanking = NOTHING_LEARNED

    async def learned_ranking(self) -> LearnedRanking:
        return self.table


def shoppers_choices(
    query: judge.Query,
    page: list[int],
    grades: dict[int, int],
    types: dict[int, str | None],
    *,
    shoppers: int,
    rng: random.Random,
    first_shopper: int,
) -> list[ShopperChoice]:
    out: list[ShopperChoice] = []
    text = normalise_query(query.text)
    for shopper in range(first_shopper, first_shopper + shoppers):
        for position, pid in enumerate(page):
            if rng.random() >= 1.0 / (position + 1) or rng.random() >= CLICK_CHANCE[grades.get(pid, 0)]:
                continue
            kinds = [InteractionType.CLICK]
            if grades.get(pid, 0) == 2 and rng.random() < CART_CHANCE:
                kinds.append(InteractionType.ADD_TO_CART)
            out.extend(ShopperChoice(text, pid, shopper, kind, position, types.get(pid)) for kind in kinds)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev,test,fresh,hard-tune")
    parser.add_argument("--shoppers", type=int, default=30, help="simulated shoppers per query")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    wanted = set(args.split.split(","))
    if "hard-frozen" in wanted:
        parser.error("hard-frozen is frozen: its grades do not drive simulated shoppers")
    catalog = judge.load_catalog()
    queries = [q for q in judge.load_queries() if q.split in wanted]
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as workdir:
        engine, encoder, index = await tune.load_stack(None, Path(workdir))
        types = CatalogProductTypes(engine, index.vectors)
        await types.ready()
        learned = Table()
        pipeline = SearchPipeline(
            encoder=encoder,
            index=index,
            catalog=tune.Catalog(engine),
            cache=tune.NoCache(),
            model_tag=lambda: "minilm-offline",
            index_version=lambda: "memory",
            keywords=SqlKeywordSearch(engine),
            colour_names=colour_lexicon(),
            product_types=types,
            dictionary=english_words(),
            shop_words=shop_words(),
            learned=learned,
            cache_enabled=False,
        )
        cold = await tune.score(pipeline, queries, catalog, "hybrid")
        choices: list[ShopperChoice] = []
        for number, row in enumerate(cold):
            page = row["ranked"][:PAGE]
            rows = await fetch_products(engine, page)
            categories = {pid: rows[pid].get("category_name") for pid in page if pid in rows}
            grades = judge.grades(row["query"], catalog)
            choices += shoppers_choices(
                row["query"],
                page,
                grades,
                categories,
                shoppers=args.shoppers,
                rng=rng,
                first_shopper=number * args.shoppers,
            )
        learned.table = learn(choices)
        warm = await tune.score(pipeline, queries, catalog, "hybrid")
        await engine.dispose()

    print(f"{args.shoppers} simulated shoppers per query, {len(choices)} choices, hybrid NDCG@10 cold -> learned")
    for split in dict.fromkeys(q.split for q in queries):
        before = [row for row in cold if row["query"].split == split]
        after = [row for row in warm if row["query"].split == split]
        learned_queries = sum(normalise_query(row["query"].text) in learned.table.queries for row in before)
        typed = sum(
            (entry := learned.table.for_query(normalise_query(row["query"].text))) is not None
            and entry.product_type is not None
            for row in before
        )
        print(
            f"  {split:10s} {len(before):4d} queries ({learned_queries} learned, {typed} with a type)  "
            f"{tune.mean(before, 'ndcg'):.4f} -> {tune.mean(after, 'ndcg'):.4f}  "
            f"recall@50 {tune.mean(before, 'recall'):.4f} -> {tune.mean(after, 'recall'):.4f}"
        )
    worse = sorted(
        ((a["ndcg"] - b["ndcg"], b["query"].text) for b, a in zip(cold, warm, strict=True) if a["ndcg"] < b["ndcg"]),
    )
    print(f"queries that lost: {len(worse)}; the worst: {[(round(d, 3), q) for d, q in worse[:8]]}")


if __name__ == "__main__":
    asyncio.run(main())
