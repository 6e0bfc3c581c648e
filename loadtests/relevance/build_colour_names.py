"""Build adapters/colour_names.json: colour names two colour libraries agree on, beyond matplotlib's (issue 14).

    .venv/bin/python loadtests/relevance/build_colour_names.py --color-name-list DIR --color-namer DIR \
        --wordnet DIR [--out adapters/colour_names.json]

matplotlib's XKCD and CSS names (adapters/colour_library.py) lack colour words a fashion shop's shoppers use:
'graphite', 'cognac', 'champagne', 'espresso'. Two MIT-licensed libraries have them: color-name-list (`npm pack
color-name-list`; its curated `dist/colornames.bestof.csv`, ~5,000 names) and color-namer (`npm pack color-namer`;
`lib/colors/ntc.js`, Name that Color's 1,566). Each alone is full of names that are something else first
('ballet', 'stiletto', 'dallas'), so a name is kept only when:
- both libraries have it, as one word (a library phrase can be a brand: 'Red Tape' is a colour there);
- WordNet 3.0 (DIR as for build_shop_words.py) does not know it as an adjective ('vintage', 'cool'), as a
  person first ('cowboy', 'bride'), as a sport first, or in any sense as a fabric or material ('cashmere',
  'leather', 'hemp') or as something a shop sells ('tuxedo', 'fedora', 'stiletto': build_shop_words.ROOTS).
Its RGB is color-name-list's. The three licenses travel in the file. No name is typed in here.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

from build_shop_words import ROOTS, below, other_words, read_senses, read_synsets, root_offset

# Where WordNet's first meaning of a word is one of these, a shopper typing it means that, not a colour.
FIRST_MEANINGS = {"person.n.01": "a human being", "sport.n.01": "an active diversion"}
# A word with any meaning under these (or ROOTS) names a material or a product, whatever else it names.
ANY_MEANINGS = {"fabric.n.01": "artifact made by weaving", "material.n.01": "the tangible substance"}


def _one_word(name: str) -> str | None:
    word = name.strip().lower()
    return word if word.isalpha() and word.isascii() else None


def read_bestof(package: Path) -> dict[str, str]:
    """color-name-list's best-of names of one word -> '#rrggbb'."""
    with (package / "dist" / "colornames.bestof.csv").open(encoding="utf-8") as rows:
        return {word: row["hex"].lower() for row in csv.DictReader(rows) if (word := _one_word(row["name"]))}


def read_ntc(package: Path) -> set[str]:
    """color-namer's Name that Color names of one word."""
    text = (package / "lib" / "colors" / "ntc.js").read_text(encoding="utf-8")
    return {word for name in re.findall(r'"name":\s*"([^"]+)"', text) if (word := _one_word(name))}


def build(color_name_list: Path, color_namer: Path, wordnet: Path) -> dict[str, object]:
    synsets = read_synsets(wordnet)
    senses = read_senses(wordnet)
    adjectives = other_words(wordnet, ("adj",))
    first = below([root_offset(name, start, senses, synsets) for name, start in FIRST_MEANINGS.items()], synsets)
    anywhere = below(
        [root_offset(name, start, senses, synsets) for name, start in {**ROOTS, **ANY_MEANINGS}.items()], synsets
    )

    def something_else(word: str) -> bool:
        meanings = senses.get(word, [])
        return word in adjectives or bool(meanings and meanings[0] in first) or any(m in anywhere for m in meanings)

    bestof, ntc = read_bestof(color_name_list), read_ntc(color_namer)
    names = {word: bestof[word] for word in sorted(bestof.keys() & ntc) if not something_else(word)}
    return {
        "source": "names both in color-name-list (best of) and color-namer (Name that Color), minus what WordNet 3.0"
        " reads otherwise; built by loadtests/relevance/build_colour_names.py",
        "licenses": {
            "color-name-list": (color_name_list / "LICENSE").read_text(encoding="utf-8").strip(),
            "color-namer": (color_namer / "LICENSE.md").read_text(encoding="utf-8").strip(),
            "wordnet": (wordnet / "LICENSE").read_text(encoding="latin-1").strip(),
        },
        "names": names,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--color-name-list", type=Path, required=True, help="the unpacked npm package color-name-list")
    parser.add_argument("--color-namer", type=Path, required=True, help="the unpacked npm package color-namer")
    parser.add_argument("--wordnet", type=Path, required=True, help="a WordNet 3.0 dict directory")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "adapters/colour_names.json")
    args = parser.parse_args()
    built = build(args.color_name_list, args.color_namer, args.wordnet)
    args.out.write_text(json.dumps(built, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    names = built["names"]
    assert isinstance(names, dict)
    print(f"{args.out}: {len(names)} names: {' '.join(names)}")


if __name__ == "__main__":
    main()
