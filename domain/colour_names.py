"""Colour names shoppers use -> the catalog's own colours, by colour distance.

A catalog labels products with a couple of dozen base colours ("Red", "Navy Blue", "Beige"); shoppers write
"crimson", "teal", "mustard" or "bottle green". A `ColourLexicon` holds a well-kept library of named colours
(name -> sRGB; adapters/colour_library.py reads it from a package, so no table is typed in here) and maps a
name the catalog does not use to the catalog colour(s) nearest to it: a shade stands for its nearest catalog
colour, and for any other within `TIE_BAND` of that distance. Catalog colours get their own RGB from the same
library, by name.

Nearness is measured in CIELAB's lightness/chroma/hue form, with hue counting most and lightness least (as
the textile trade's CMC l:c = 2:1 does): shoppers name a shade by its hue ('teal' is a green-blue, not a grey
of the same lightness). A clearly coloured name (chroma >= `CHROMATIC`) only ever maps to a coloured catalog
colour, a greyish one to any.

Pure and deterministic; `shades_for` is memoised per set of catalog colours (the vocabulary's colours change
rarely).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Rgb = tuple[int, int, int]
Lab = tuple[float, float, float]

TIE_BAND = 1.35  # other catalog colours within this factor of the nearest one's distance also count
MAX_DISTANCE = 60.0  # a named colour farther than this from every catalog colour names none of them
CHROMATIC = 20.0  # CIELAB chroma from which a colour is a colour rather than a grey
LIGHTNESS_WEIGHT = 0.3
CHROMA_WEIGHT = 0.2
LONGEST_NAME = 3  # words


def parse_hex(value: str) -> Rgb:
    text = value.strip().lstrip("#")
    if len(text) != 6:
        raise ValueError(f"not a #rrggbb colour: {value!r}")
    return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))


def _linear(channel: int) -> float:
    c = channel / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def to_lab(rgb: Rgb) -> Lab:
    """sRGB (D65) -> CIELAB."""
    r, g, b = (_linear(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz))


def chroma(lab: Lab) -> float:
    return math.hypot(lab[1], lab[2])


def hue(lab: Lab) -> float:
    return math.degrees(math.atan2(lab[2], lab[1])) % 360.0


def _distance(a: Lab, b: Lab) -> float:
    """Between coloured colours: the hue angle in degrees, plus a little of the lightness and chroma
    differences (to choose between 'Blue' and 'Navy Blue'); otherwise a weighted LCh distance."""
    delta_l = (a[0] - b[0]) * LIGHTNESS_WEIGHT
    delta_c = (chroma(a) - chroma(b)) * CHROMA_WEIGHT
    if chroma(a) >= CHROMATIC and chroma(b) >= CHROMATIC:
        turn = abs(hue(a) - hue(b)) % 360.0
        return math.sqrt(min(turn, 360.0 - turn) ** 2 + delta_l**2 + delta_c**2)
    return math.sqrt(delta_l**2 + delta_c**2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2 - (chroma(a) - chroma(b)) ** 2)


def normalise_name(name: str) -> str:
    """'xkcd:Bottle Green' / 'bottle_green' -> 'bottle green'."""
    name = name.split(":", 1)[-1].lower().replace("_", " ").replace("-", " ").replace("'", "")
    return " ".join(name.split())


@dataclass
class ColourLexicon:
    """Named colours (normalised name -> RGB) and, per catalog palette, what each name stands for."""

    named: Mapping[str, Rgb]
    _memo: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_hex(cls, names: Mapping[str, str]) -> ColourLexicon:
        named: dict[str, Rgb] = {}
        for name, value in names.items():
            key = normalise_name(name)
            if key and key.replace(" ", "").isalpha():
                named.setdefault(key, parse_hex(value))
        return cls(named)

    def rgb_of(self, catalog_colour: str) -> Rgb | None:
        """The library's RGB for a catalog colour name ('Navy Blue' -> navy blue, else navy; 'Grey' -> gray)."""
        key = normalise_name(catalog_colour)
        for candidate in (key, key.replace(" ", ""), key.replace("grey", "gray"), key.split()[0], key.split()[-1]):
            if candidate in self.named:
                return self.named[candidate]
        return None

    def shades_for(self, catalog_colours: Iterable[str]) -> Mapping[str, tuple[str, ...]]:
        """Every library name that is not a catalog colour -> the catalog colours it stands for."""
        palette = tuple(sorted(set(catalog_colours)))
        if palette not in self._memo:
            self._memo[palette] = self._map(palette)
        return self._memo[palette]

    def _map(self, palette: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        anchors = [(colour, to_lab(rgb)) for colour in palette if (rgb := self.rgb_of(colour)) is not None]
        own = {normalise_name(colour) for colour in palette}
        mapped: dict[str, tuple[str, ...]] = {}
        if not anchors:
            return mapped
        for name, rgb in self.named.items():
            if name in own:
                continue
            lab = to_lab(rgb)
            coloured = chroma(lab) >= CHROMATIC
            ranked = sorted(
                (_distance(lab, anchor), colour)
                for colour, anchor in anchors
                if not coloured or chroma(anchor) >= CHROMATIC
            )
            if not ranked:
                continue
            nearest = ranked[0][0]
            if nearest > MAX_DISTANCE:
                continue
            mapped[name] = tuple(colour for distance, colour in ranked if distance <= max(nearest * TIE_BAND, 1e-9))
        return mapped
