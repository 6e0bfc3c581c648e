"""The colour library behind domain/colour_names.py: matplotlib's named colours, read once per process.

XKCD's colour survey names (949: 'crimson', 'mustard', 'bottle green'...), then the CSS4 names for what it
lacks. XKCD comes first: its names are what people call the colours, where some CSS names are not ('azure'
is blue to a shopper, near white in CSS).
"""

from __future__ import annotations

from functools import lru_cache

from domain.colour_names import ColourLexicon


@lru_cache(maxsize=1)
def colour_lexicon() -> ColourLexicon:
    from matplotlib.colors import CSS4_COLORS, XKCD_COLORS  # imported here: 0.5 s, once, only where used

    # The first of two equal names is kept: XKCD's. Both tables hold '#rrggbb' strings.
    names = {**XKCD_COLORS, **{f"css:{name}": value for name, value in CSS4_COLORS.items()}}
    return ColourLexicon.from_hex({name: str(value) for name, value in names.items()})
