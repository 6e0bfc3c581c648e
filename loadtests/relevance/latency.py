"""Uncached search latency in-process, with and without issue 14's levers (colour library, type prototypes,
the dictionary of words of the language), and with the shop's part of WordNet on top of them (`shop words`).

The same stack as tune.py (SQLite keyword leg, in-memory exact index, real MiniLM on this machine's CPU; no
result or embedding cache: tune.py's encoder memo is bypassed), every query of the chosen splits through the
hybrid pipeline, interleaved (levers off, levers on, shop words, per query, `--rounds` times) so machine noise
hits them alike. Also times query understanding alone. Prints p50/p95 in milliseconds.

`--learned`: a third pipeline, the levers on plus a learned table (domain/click_model.py) with an entry for every
query timed (20 learned products each, no type: the look-up and re-ranking every learned search pays), to time
what learning from the shop costs a search.

    .venv/bin/python loadtests/relevance/latency.py --split dev,test,fresh --rounds 3 [--learned]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import judge  # noqa: E402
import tune  # noqa: E402

from adapters.colour_library import colour_lexicon  # noqa: E402
from adapters.db.keyword_search import SqlKeywordSearch  # noqa: E402
from adapters.dictionary import english_words  # noqa: E402
from adapters.product_types import CatalogProductTypes  # noqa: E402
from adapters.shop_words import shop_words  # noqa: E402
from domain.api_models import SearchRequest  # noqa: E402
from domain.cache_keys import normalise_query  # noqa: E402
from domain.click_model import LearnedQuery, LearnedRanking  # noqa: E402
from domain.query_understanding import UnderstoodQuery, understand  # noqa: E402
from domain.search import SearchPipeline  # noqa: E402


class Learned:
    def __init__(self, table: LearnedRanking) -> None:
        self.table = table

    async def learned_ranking(self) -> LearnedRanking:
        return self.table


def learned_for(queries: list[str], product_ids: list[int]) -> LearnedRanking:
    """Every query learned: 20 products each, the first of them its favourite."""
    entries = {}
    for number, text in enumerate(queries):
        chosen = product_ids[number % len(product_ids) :][:20] or product_ids[:20]
        boosts = {pid: 0.9 / (rank + 1) for rank, pid in enumerate(chosen)}
        entries[normalise_query(text)] = LearnedQuery(boosts, shoppers=50, version=f"v{number}")
    return LearnedRanking(entries)


class Uncached(tune.Encoder):
    async def encode_text(self, text: str):  # type: ignore[no-untyped-def]
        return self.model.encode_text([text])[0]


def quantiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=20)
    return f"p50 {statistics.median(samples):7.2f}  p95 {cuts[18]:7.2f}  (n={len(samples)})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev,test,fresh")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--learned", action="store_true", help="also time the levers with every query learned")
    args = parser.parse_args()
    wanted = set(args.split.split(","))
    queries = [q.text for q in judge.load_queries() if "all" in wanted or q.split in wanted]
    with tempfile.TemporaryDirectory() as workdir:
        engine, _memo_encoder, index = await tune.load_stack(None, Path(workdir))
        encoder = Uncached()
        keywords = SqlKeywordSearch(engine)
        types = CatalogProductTypes(engine, index.vectors)
        await types.ready()  # built once, before timing (a service builds them in the background)
        common = dict(
            encoder=encoder,
            index=index,
            catalog=tune.Catalog(engine),
            cache=tune.NoCache(),
            model_tag=lambda: "minilm-offline",
            index_version=lambda: "memory",
            keywords=keywords,
            cache_enabled=False,
        )
        levers = dict(colour_names=colour_lexicon(), product_types=types, dictionary=english_words())
        pipelines = {
            "off": SearchPipeline(**common),  # type: ignore[arg-type]
            "on": SearchPipeline(**common, **levers),  # type: ignore[arg-type]
            "words": SearchPipeline(**common, **levers, shop_words=shop_words()),  # type: ignore[arg-type]
        }
        if args.learned:
            table = learned_for(queries, [int(pid) for pid in index.ids])
            pipelines["learned"] = SearchPipeline(
                **common,  # type: ignore[arg-type]
                colour_names=colour_lexicon(),
                product_types=types,
                learned=Learned(table),
            )
        took: dict[str, list[float]] = {name: [] for name in pipelines}
        for _ in range(args.rounds):
            for text in queries:
                for name, pipeline in pipelines.items():
                    started = time.perf_counter()
                    await pipeline.search(SearchRequest(query=text, limit=20, mode="hybrid"))
                    took[name].append((time.perf_counter() - started) * 1000)
        vocabulary = await keywords.vocabulary()
        lexicon = colour_lexicon()
        words, dictionary = shop_words(), english_words()
        readers: dict[str, Callable[[str], UnderstoodQuery]] = {
            "off": lambda text: understand(text, vocabulary),
            "on": lambda text: understand(text, vocabulary, colour_names=lexicon, dictionary=dictionary),
            "words": lambda text: understand(
                text, vocabulary, colour_names=lexicon, dictionary=dictionary, shop_words=words
            ),
        }
        reading: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(args.rounds):
            for text in queries:
                for name, reader in readers.items():
                    started = time.perf_counter()
                    reader(text)
                    reading[name].append((time.perf_counter() - started) * 1000)
        await engine.dispose()
    print(f"{len(queries)} queries x {args.rounds} rounds, hybrid, uncached, ms")
    for name in pipelines:
        print(f"  search, levers {name:7s}: {quantiles(took[name])}")
    for name in reading:
        print(f"  understand, levers {name:5s}: {quantiles(reading[name])}")


if __name__ == "__main__":
    asyncio.run(main())
