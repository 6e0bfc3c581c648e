"""What a shopper's word for a product is a kind of, when neither the catalog nor the synonym table knows it.

Shoppers write 'cagoule', 'haversack', 'sundress' or 'canteen'; the catalog says Jackets, Backpacks, Dresses and
Water Bottle. A dictionary knows what each is a kind of: a cagoule is a parka, a kind of jacket. `ShopWords`
holds the parts of WordNet's noun hierarchy a shop sells from (clothing, footwear, bags, jewellery, sports
equipment, bottles...; adapters/shop_words.py loads them, loadtests/relevance/build_shop_words.py extracts them
from WordNet 3.0, and regional names from Unicode CLDR's emoji keywords, so no entry is typed in here).
`kinds(phrase)` gives the phrase's own synonyms and then its ancestors' lemmas, nearest first: 'cagoule' -> [],
[parka, windbreaker, windcheater, anorak], [jacket], [coat]; query understanding (domain/query_understanding.py)
keeps the nearest of those the catalog has.

Which meaning: a word's senses among those a shop sells are offered commonest first (WordNet orders a lemma's
senses by how often they were met in its tagged texts): 'pocketbook' is a wallet, then a handbag; query
understanding reads it as the first of them the catalog has a kind of. An everyday
word (`everyday=True`: one the encoder knows whole) is read only when its commonest meaning of all is a
product: 'canteen' is a flask first, but 'band', 'base' or 'iron' are not things a shopper means to buy.
A lemma names an ancestor only in that ancestor's own commonest shop sense ('dress' is a frock, not the
'apparel, dress, clothes' of clothing in general), and the walk up stops below categories (a synset with more
than `CATEGORY` kinds under it: garment, clothing): 'garment' says nothing a shopper's word did not.

Words are looked up the way WordNet's own morphology does it for nouns: as written, through its list of
irregular plurals, and with the regular plural endings taken off ('slacks' is a lemma; 'slingbacks' ->
slingback, 'pedal pushers' -> pedal pusher). Lemmas are read like a query's words: lower case, hyphens,
underscores and apostrophes as word breaks ('flip-flop' -> 'flip flop', "woman's clothing" -> 'woman clothing').

Pure: built from the file's mapping, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CATEGORY = 100  # kinds under a synset from which it is a category, not a product (garment has 271, coat 53)
# WordNet's detachment rules for nouns (morphy): an ending, and what replaces it.
_NOUN_ENDINGS = (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
                  ("ies", "y"))  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")
_POSSESSIVE = re.compile(r"'s?\b")


def detached_forms(word: str) -> list[str]:
    """What `word` could be the plural of, by WordNet's detachment rules for nouns ('runners' -> 'runner')."""
    return [
        word[: -len(ending)] + replacement
        for ending, replacement in _NOUN_ENDINGS
        if word.endswith(ending) and len(word) > len(ending) + 1
    ]


def lemma_words(lemma: str) -> str:
    """A WordNet lemma as a query's words ('Flip-flop' -> 'flip flop', "woman's_clothing" -> 'woman clothing')."""
    text = _POSSESSIVE.sub("", lemma.lower().replace("_", " "))
    return " ".join(_WORD.findall(text))


@dataclass(frozen=True)
class Synset:
    lemmas: tuple[str, ...]  # as query words
    senses: tuple[int, ...]  # per lemma, which of its noun senses this is (1: its commonest)
    hypernyms: tuple[str, ...]  # ids of its parents within the file


class ShopWords:
    """The shop's part of WordNet: lemma -> its synsets there, commonest first, each synset with its parents."""

    def __init__(self, synsets: Mapping[str, Synset], exceptions: Mapping[str, Sequence[str]] | None = None) -> None:
        self._synsets = dict(synsets)
        self._exceptions = {
            lemma_words(word): tuple(lemma_words(base) for base in bases) for word, bases in (exceptions or {}).items()
        }
        senses: dict[str, list[tuple[int, str]]] = {}  # lemma -> (sense number, synset id) of its shop senses
        children: dict[str, list[str]] = {}
        for synset_id, synset in self._synsets.items():
            for lemma, sense in zip(synset.lemmas, synset.senses, strict=True):
                if lemma:
                    senses.setdefault(lemma, []).append((sense, synset_id))
            for parent in synset.hypernyms:
                children.setdefault(parent, []).append(synset_id)
        self._senses = {lemma: sorted(found) for lemma, found in senses.items()}  # commonest first
        self._categories = frozenset(sid for sid in self._synsets if _count_below(sid, children) > CATEGORY)
        self.longest = max((len(lemma.split()) for lemma in self._senses), default=0)  # words in the longest lemma

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ShopWords:
        """From adapters/shop_words.json's layout: {"synsets": {id: {lemmas, senses, hypernyms, gloss}},
        "exceptions": {inflected: [lemma...]}}; a lemma written two ways in one synset counts once. The gloss is
        there for people reading the file: nothing here reads it."""
        synsets = {}
        for synset_id, entry in data["synsets"].items():
            pairs = dict.fromkeys(
                (lemma_words(lemma), int(sense)) for lemma, sense in zip(entry["lemmas"], entry["senses"], strict=True)
            )
            synsets[str(synset_id)] = Synset(
                lemmas=tuple(lemma for lemma, _ in pairs),
                senses=tuple(sense for _, sense in pairs),
                hypernyms=tuple(str(parent) for parent in entry.get("hypernyms", ())),
            )
        return cls(synsets, data.get("exceptions", {}))

    def __len__(self) -> int:
        return len(self._senses)

    def base_form(self, phrase: str) -> str | None:
        """The lemma `phrase` is a form of (WordNet's morphy on its last word), as written first; None if none."""
        head, _, last = phrase.rpartition(" ")
        prefix = f"{head} " if head else ""
        candidates = [phrase, *(prefix + base for base in self._exceptions.get(last, ()))]
        candidates += [prefix + base for base in detached_forms(last)]
        return next((form for form in candidates if form in self._senses), None)

    def kinds(self, phrase: str, *, everyday: bool = False) -> list[list[tuple[str, ...]]]:
        """Per shop sense of the phrase, commonest first: its other lemmas, then its parents' lemmas, then
        theirs..., nearest first, up to the first category (each level's lemmas those naming it in their
        commonest shop sense). No sense when the phrase is no product here, a category, or (`everyday`) not
        commonly a product."""
        form = self.base_form(phrase)
        if form is None:
            return []
        out = []
        for sense, synset_id in self._senses[form]:
            if (everyday and sense != 1) or synset_id in self._categories:
                continue
            levels: list[tuple[str, ...]] = []
            level, visited = [synset_id], {synset_id}
            while level:
                names = (lemma for sid in level for lemma in self._names(sid) if lemma != form)
                levels.append(tuple(dict.fromkeys(names)))
                parents = [p for sid in level for p in self._synsets[sid].hypernyms if p not in self._categories]
                level = [p for p in dict.fromkeys(parents) if p not in visited]
                visited.update(level)
            out.append(levels)
        return out

    def _names(self, synset_id: str) -> list[str]:
        return [lemma for lemma in self._synsets[synset_id].lemmas if self._senses[lemma][0][1] == synset_id]


def _count_below(synset_id: str, children: Mapping[str, Sequence[str]]) -> int:
    seen: set[str] = set()
    stack = list(children.get(synset_id, ()))
    while stack:
        child = stack.pop()
        if child not in seen:
            seen.add(child)
            stack.extend(children.get(child, ()))
    return len(seen)
