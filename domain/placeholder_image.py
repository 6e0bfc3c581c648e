"""A product picture for products without a photo: an SVG silhouette of the category in the product's colour.

The demo catalog has no photos, and a real feed can point at a file that is gone; a storefront should show a
calm placeholder that still says "black heels" rather than a broken-image icon. Same inputs give the same SVG,
byte for byte, so browsers and CDNs can cache it. The category text comes from a third-party feed, so it is
XML-escaped: the SVG is a document a browser will render if opened on its own.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

WIDTH, HEIGHT = 240, 320  # the fashion feed's photos are 240x320
BACKGROUND = "#f1efea"
LABEL_INK = "#6b6b72"
UNKNOWN_COLOUR = "#9a948a"

# Colour names as feeds write them (the fashion feed's baseColour, the demo catalog's palette, common extras).
COLOURS: dict[str, str] = {
    "black": "#26262a",
    "white": "#fbfbf8",
    "off white": "#f4f0e6",
    "cream": "#f1e7cf",
    "beige": "#d9c7a7",
    "tan": "#c49a6c",
    "brown": "#7a5136",
    "coffee brown": "#5b3d2b",
    "khaki": "#b3a77a",
    "olive": "#6b7041",
    "green": "#3f8a57",
    "sea green": "#3c9d83",
    "lime green": "#93c451",
    "teal": "#2b7f86",
    "blue": "#3b6fb6",
    "navy blue": "#22324f",
    "turquoise blue": "#3bb3c3",
    "purple": "#6f4a9c",
    "lavender": "#b7a6d9",
    "pink": "#e48fab",
    "peach": "#f2b895",
    "red": "#c2362f",
    "maroon": "#6e1f2a",
    "burgundy": "#76253a",
    "orange": "#e67e33",
    "rust": "#a9532d",
    "mustard": "#d1a02f",
    "yellow": "#efcb3a",
    "gold": "#c9a13f",
    "silver": "#b9bcc2",
    "grey": "#8d9096",
    "grey melange": "#a3a5a8",
    "charcoal": "#45474c",
    "steel": "#71797e",
    "multi": "#8e7cc3",
}

# Silhouettes in a 240x320 box: (outline path, extra strokes drawn without fill).
_SHAPES: dict[str, tuple[str, str]] = {
    "top": (
        "M82 70 L106 58 Q120 72 134 58 L158 70 L194 104 L172 128 L158 114 L158 252 L82 252 L82 114 L68 128 L46 104 Z",
        "",
    ),
    "bottom": ("M82 66 H158 L168 252 H130 L120 132 L110 252 H72 Z", "M82 82 H158"),
    "dress": ("M102 58 H138 L136 104 L182 252 H58 L104 104 Z", "M104 104 H136"),
    "shoe": (
        "M48 214 L50 166 Q82 166 102 142 L122 152 Q150 188 188 192 Q202 196 200 214 L198 222 H50 Z",
        "M50 206 H199",
    ),
    "bag": ("M60 132 H180 L170 252 H70 Z", "M96 132 V114 Q120 78 144 114 V132"),
    "headwear": ("M62 188 Q62 112 120 110 Q178 112 178 188 Z", "M170 188 Q206 188 212 200 L120 200"),
    "watch": (
        "M92 162 A28 28 0 1 0 148 162 A28 28 0 1 0 92 162 Z",
        "M106 100 H134 V134 H106 Z M106 190 H134 V224 H106 Z",
    ),
    "eyewear": (
        "M56 160 A26 22 0 1 0 108 160 A26 22 0 1 0 56 160 Z M132 160 A26 22 0 1 0 184 160 A26 22 0 1 0 132 160 Z",
        "M108 156 Q120 146 132 156 M56 156 L40 146 M184 156 L200 146",
    ),
    "ball": ("M70 166 A50 50 0 1 0 170 166 A50 50 0 1 0 70 166 Z", "M120 116 V216 M74 146 Q120 176 166 146"),
    "other": ("M70 110 L120 80 L170 110 V240 H70 Z", "M112 108 A8 8 0 1 0 128 108 A8 8 0 1 0 112 108"),
}

# Words in a category name (or the feed's fashion category) -> silhouette; the first match wins.
_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shoe", ("shoe", "sneaker", "heel", "flat", "boot", "sandal", "flip flop", "loafer", "trainer", "sock")),
    ("bag", ("bag", "backpack", "handbag", "wallet", "clutch", "tote", "duffel", "purse")),
    ("dress", ("dress", "gown", "jumpsuit")),
    ("bottom", ("trouser", "jean", "short", "pant", "legging", "skirt", "capri", "bottom", "jogger")),
    ("headwear", ("cap", "hat", "beanie", "headwear")),
    ("watch", ("watch",)),
    ("eyewear", ("sunglass", "eyewear", "glasses")),
    ("ball", ("ball",)),
    ("top", ("shirt", "top", "sweat", "jacket", "coat", "blazer", "hoodie", "jersey", "swim", "kurta", "set")),
)


def colour_hex(colour: str | None) -> str:
    return COLOURS.get((colour or "").strip().lower(), UNKNOWN_COLOUR)


def silhouette(category: str | None, fashion_category: str | None = None) -> str:
    """The silhouette's name for a product, from its category (falling back to the feed's fashion category)."""
    for text in (category, fashion_category):
        lowered = (text or "").lower()
        for kind, words in _KINDS:
            if any(word in lowered for word in words):
                return kind
    return "other"


def _darker(hex_colour: str, factor: float = 0.62) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#{:02x}{:02x}{:02x}".format(*(round(part * factor) for part in (red, green, blue)))


def placeholder_svg(category: str | None, colour: str | None, fashion_category: str | None = None) -> str:
    fill = colour_hex(colour)
    stroke = _darker(fill) if fill not in ("#fbfbf8", "#f4f0e6", "#f1e7cf") else "#b9b3a8"
    outline, details = _SHAPES[silhouette(category, fashion_category)]
    label = " · ".join(part for part in ((category or "").strip(), (colour or "").strip()) if part)[:60]
    detail = (
        f'<path d="{details}" fill="none" stroke="{stroke}" stroke-width="4" stroke-linecap="round"/>'
        if details
        else ""
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' role="img" aria-label="{escape(label or "product", {chr(34): "&quot;"})}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="{BACKGROUND}"/>'
        f'<path d="{outline}" fill="{fill}" stroke="{stroke}" stroke-width="4" stroke-linejoin="round"'
        ' fill-rule="evenodd"/>'
        f"{detail}"
        f'<text x="{WIDTH // 2}" y="{HEIGHT - 28}" text-anchor="middle" font-family="system-ui, sans-serif"'
        f' font-size="13" fill="{LABEL_INK}">{escape(label)}</text>'
        "</svg>"
    )
