"""The keyword leg's contract: the query it is handed, the hits it returns, the vocabulary it knows.

The search pipeline (domain/search.py) builds a `KeywordQuery` from what it understood of the shopper's words
(domain/query_understanding.py) and hands it to a `KeywordSearcher`; adapters/db/keyword_search.py answers
it with PostgreSQL full-text search or SQLite FTS5, filters applied in the same SQL statement. The
`Vocabulary` is what the catalog's searchable text contains, so spelling correction and synonym expansion
only ever produce words that can match something.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from domain.filters import SearchFilters

# A form is lower-case words of letters and digits separated by single spaces: safe to put into a full-text
# query string of either backend without escaping.
_FORM = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*")


def is_form(text: str) -> bool:
    return _FORM.fullmatch(text) is not None


@dataclass(frozen=True)
class TermGroup:
    """One thing the shopper asked for, in every form a catalog may write it; any one form matches.

    `forms` are words or phrases ('flip flops' matches the two words next to each other). `weight` is the
    group's importance relative to the other groups of the query (the backend adds its own term rarity).
    A group that does not `admit` only adds to the score of products that another group matches: 'red' in
    'red dress' ranks red dresses first without bringing in every red product of the catalog. An `attribute`
    group matches what a product is (its colour, who it is for: the attributes field), not what its text
    mentions. A product containing one of `excludes` does not match the group ('shirt' excludes 't shirt').
    A negative `weight` is something the shopper does not want ('not black', 'without heels'): the group
    never admits a product, and lowers the score of the products it matches below those it does not.
    """

    forms: tuple[str, ...]
    weight: float = 1.0
    admits: bool = True
    attribute: bool = False
    excludes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.forms:
            raise ValueError("a term group needs at least one form")
        bad = [form for form in (*self.forms, *self.excludes) if not is_form(form)]
        if bad:
            raise ValueError(f"term forms must be lower-case words separated by spaces: {bad!r}")
        if self.weight < 0 and self.admits:
            raise ValueError("a group that is not wanted (negative weight) cannot admit products")

    @property
    def unwanted(self) -> bool:
        return self.weight < 0


@dataclass(frozen=True)
class KeywordQuery:
    """Term groups, and whether some word of the query has no group (it occurs nowhere in the catalog)."""

    groups: tuple[TermGroup, ...] = ()
    partial: bool = False

    @property
    def is_empty(self) -> bool:
        return not self.groups

    @property
    def admitting(self) -> tuple[TermGroup, ...]:
        """The groups whose match admits a product.

        When none is marked so, all of them ('red', 'for men'), unless the query is partial: in 'red sneaks',
        with 'sneaks' unknown, 'red' alone would admit every red product, which is not what was asked.
        """
        marked = tuple(group for group in self.groups if group.admits)
        if marked or self.partial:
            return marked
        return tuple(group for group in self.groups if not group.unwanted)

    @property
    def wanted(self) -> tuple[TermGroup, ...]:
        """The groups that are not negated."""
        return tuple(group for group in self.groups if not group.unwanted)


@dataclass(frozen=True)
class KeywordHits:
    """Matching product ids, best first, with their keyword scores (higher is better)."""

    ids: list[int]
    scores: list[float]
    total: int  # every active product that matches the words and the filters, not just the `k` returned


@dataclass(frozen=True)
class Vocabulary:
    """What the catalog's searchable text contains: words with their document counts, and its colours."""

    words: Mapping[str, int] = field(default_factory=dict)  # word -> active products containing it
    colours: tuple[str, ...] = ()  # as the catalog spells them ("Navy Blue")
    documents: int = 0

    @cached_property
    def words_by_length(self) -> Mapping[int, tuple[str, ...]]:
        """The alphabetic words, by length: what a spelling corrector compares a typo with (built once per
        vocabulary, not scanned whole for every unknown word of every query)."""
        by_length: dict[int, list[str]] = {}
        for word in self.words:
            if word.isalpha():
                by_length.setdefault(len(word), []).append(word)
        return {length: tuple(words) for length, words in by_length.items()}

    def knows(self, form: str) -> bool:
        """Whether every word of `form` occurs in the catalog."""
        return all(word in self.words for word in form.split())

    def count(self, form: str) -> int:
        """Products containing the form's words (its rarest word's count: an upper bound for a phrase)."""
        return min((self.words.get(word, 0) for word in form.split()), default=0)

    def idf(self, forms: tuple[str, ...], excludes: tuple[str, ...] = ()) -> float:
        """BM25's inverse document frequency of a group of alternative forms; 1.0 with no vocabulary.

        The group's document count is taken as its commonest form's (forms of one thing mostly overlap),
        less its commonest exclusion's ('shirt' is in every 't-shirt'; those do not count for 'shirt').
        """
        if self.documents <= 0:
            return 1.0
        count = max((self.count(form) for form in forms), default=0)
        count -= max((self.count(form) for form in excludes), default=0)
        count = min(self.documents, max(count, 1))
        return math.log(1.0 + (self.documents - count + 0.5) / (count + 0.5))


EMPTY_VOCABULARY = Vocabulary()


class KeywordSearcher(Protocol):
    async def search(self, query: KeywordQuery, *, k: int, filters: SearchFilters | None) -> KeywordHits:
        """The best `k` active products matching any group of `query` and all `filters`."""
        ...

    async def vocabulary(self) -> Vocabulary:
        """The catalog's current vocabulary (may be a few minutes old)."""
        ...
