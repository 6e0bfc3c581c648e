"""The colour library behind domain/colour_names.py: matplotlib's named colours and a fashion shop's, read once
per process.

XKCD's colour survey names (949: 'crimson', 'mustard', 'bottle green'...), then the CSS4 names for what it
lacks, then adapters/colour_names.json for what both lack ('graphite', 'cognac', 'champagne', 'espresso': names
two colour libraries agree on and WordNet does not read as something else first; built by
loadtests/relevance/build_colour_names.py, which says how). XKCD comes first: its names are what people call the
colours, where some CSS names are not ('azure' is blue to a shopper, near white in CSS).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from domain.colour_names import ColourLexicon

MORE_NAMES_FILE = Path(__file__).with_name("colour_names.json")


@lru_cache(maxsize=1)
def colour_lexicon() -> ColourLexicon:
    from matplotlib.colors import CSS4_COLORS, XKCD_COLORS  # imported here: 0.5 s, once, only where used

    # The first of two equal names is kept: XKCD's, then CSS's. All three hold '#rrggbb' strings.
    more = json.loads(MORE_NAMES_FILE.read_text(encoding="utf-8"))["names"]
    names = {
        **XKCD_COLORS,
        **{f"css:{name}": value for name, value in CSS4_COLORS.items()},
        **{f"shop:{name}": value for name, value in more.items()},
    }
    return ColourLexicon.from_hex({name: str(value) for name, value in names.items()})
