"""Shopper words -> the words catalogs use, for the keyword leg of search.

Shoppers type 'kicks', 'pumps' or 'tote'; product feeds say 'sneaker', 'heels' and 'handbag'. Each entry maps
a phrase a shopper types to the phrases a feed is likely to use for the same thing. The table is about
fashion words in general, not about one catalog: the query side keeps only the expansions that occur in the
catalog's vocabulary, so an entry that a catalog has no use for costs nothing.

Keys and expansions are lower-case words separated by single spaces. A multi-word key ('running shoes')
is matched before the single words in it. Expansions say *also look for*, never *instead of*: the shopper's
own word stays in the query.
"""

from __future__ import annotations

from collections.abc import Mapping

# fmt: off
SYNONYMS: Mapping[str, tuple[str, ...]] = {
    # shoes
    "kicks": ("sneaker", "shoes", "casual shoes", "sports shoes"),
    "sneaker": ("shoes", "casual shoes", "sports shoes"),
    "sneakers": ("sneaker", "shoes", "casual shoes", "sports shoes"),
    "trainers": ("sneaker", "shoes", "sports shoes"),
    "runners": ("sports shoes", "running shoes"),
    "running shoes": ("sports shoes", "running"),
    "gym shoes": ("sports shoes",),
    "tennis shoes": ("sports shoes",),
    "football boots": ("sports shoes", "football shoe"),
    "boots": ("shoes",),
    "loafers": ("casual shoes", "formal shoes", "shoes"),
    "brogues": ("formal shoes",),
    "oxfords": ("formal shoes",),
    "office shoes": ("formal shoes",),
    "dress shoes": ("formal shoes",),
    "pumps": ("heels",),
    "stilettos": ("heels",),
    "stiletto": ("heels",),
    "wedges": ("heels", "wedge"),
    "slides": ("flip flops", "sandals", "sandal"),
    "sliders": ("flip flops", "sandals", "sandal"),
    "thongs": ("flip flops",),
    "chappals": ("flip flops", "sandals"),
    "floaters": ("sandals", "floater"),
    "slippers": ("flip flops", "sandals"),
    "slipper": ("flip flop", "sandal"),
    "plimsolls": ("casual shoes", "canvas shoe"),
    "moccasins": ("casual shoes",),
    "boat shoes": ("casual shoes",),
    "walking shoes": ("sports shoes", "casual shoes"),
    "hiking shoes": ("sports shoes",),
    "training shoes": ("sports shoes",),
    "spikes": ("sports shoes", "spike"),
    "cleats": ("sports shoes", "football shoe"),
    "ballerinas": ("flats", "ballerina"),
    "ballet flats": ("flats", "ballerina"),
    "ballet pumps": ("flats", "ballerina"),
    "peep toes": ("heels",),
    "kitten heels": ("heels",),
    "footwear": ("shoes", "sandals", "heels", "flats", "flip flops"),
    # tops
    "tee": ("tshirt",),
    "tees": ("tshirt",),
    "polo": ("tshirts", "polo"),
    "polo shirt": ("tshirts", "polo tshirt", "polo"),
    "polo shirts": ("tshirts", "polo tshirt", "polo"),
    "hoodie": ("sweatshirt", "hoody"),
    "hoodies": ("sweatshirt", "hoody"),
    "hoody": ("sweatshirt",),
    "jumper": ("sweatshirt",),
    "sweater": ("sweatshirt",),
    "pullover": ("sweatshirt",),
    "blouse": ("tops", "top"),
    "tank": ("tops", "tank top"),
    "vest": ("tops", "tank top", "singlet"),
    "singlet": ("tshirt", "tank top"),
    "camisole": ("tops",),
    "cami": ("tops",),
    "tunic": ("tops", "top"),
    "kurti": ("tops", "top"),
    "gilet": ("jacket",),
    "bomber": ("jacket",),
    "anorak": ("jacket",),
    "raincoat": ("jacket",),
    "windcheater": ("jacket",),
    "windbreaker": ("jacket",),
    "coat": ("jacket",),
    "parka": ("jacket",),
    "blazer": ("jacket",),
    # bottoms
    "joggers": ("track pants",),
    "sweatpants": ("track pants",),
    "sweats": ("track pants",),
    "trackies": ("track pants",),
    "jogging bottoms": ("track pants",),
    "jogging pants": ("track pants",),
    "bermudas": ("shorts",),
    "tracksuit bottoms": ("track pants",),
    "leggings": ("capris", "track pants"),
    "tights": ("capris",),
    "yoga pants": ("track pants", "capris"),
    "jeans": ("denim", "pants", "trousers"),
    "chinos": ("trousers", "pants"),
    # dresses
    "frock": ("dress", "dresses"),
    "gown": ("dress", "dresses"),
    # swim
    "bathing suit": ("swimwear", "swimsuit"),
    "swimming costume": ("swimwear", "swimsuit"),
    "swimsuit": ("swimwear",),
    "swimming suit": ("swimwear", "swimsuit"),
    "bikini": ("swimwear",),
    "swimming trunks": ("swimwear", "shorts"),
    "goggles": ("swimwear", "goggles"),
    # bags
    "tote": ("handbag", "handbags"),
    "tote bag": ("handbag", "handbags"),
    "purse": ("handbag", "handbags"),
    "clutch": ("handbag", "handbags"),
    "satchel": ("handbag", "bag"),
    "rucksack": ("backpack", "backpacks"),
    "knapsack": ("backpack", "backpacks"),
    "schoolbag": ("backpack", "backpacks"),
    "duffle": ("duffel", "duffle"),
    "duffel": ("duffel", "duffle"),
    "holdall": ("duffel bag", "duffle"),
    "gym bag": ("duffel bag", "duffle", "backpack"),
    "sports bag": ("duffel bag", "duffle", "backpack"),
    "kit bag": ("duffel bag", "duffle"),
    "travel bag": ("duffel bag", "duffle", "backpack"),
    "weekender": ("duffel bag", "duffle"),
    "school bag": ("backpack", "backpacks"),
    "laptop bag": ("backpack", "backpacks"),
    "bookbag": ("backpack", "backpacks"),
    "daypack": ("backpack", "backpacks"),
    "shoulder bag": ("handbag", "handbags"),
    "sling bag": ("handbag", "handbags"),
    "hobo bag": ("handbag", "handbags"),
    # headwear
    "hat": ("cap", "caps"),
    "hats": ("cap", "caps"),
    "sun hat": ("cap",),
    "beanie": ("cap",),
    "baseball cap": ("cap",),
    "baseball hat": ("cap",),
    "snapback": ("cap",),
    "visor": ("cap",),
    # sport goods
    "soccer": ("football",),
    "soccer ball": ("football",),
    "sipper": ("water bottle", "sipper"),
    "flask": ("water bottle",),
    "bottle": ("water bottle",),
}

# Colour words shoppers use -> the colour names catalogs use (only names the catalog has are kept).
COLOURS: Mapping[str, tuple[str, ...]] = {
    "gray": ("grey",),
    "charcoal": ("grey", "black"),
    "golden": ("gold",),
    "burgundy": ("maroon",),
    "wine": ("maroon",),
    "violet": ("purple",),
    "lilac": ("purple",),
    "lavender": ("purple",),
    "khaki": ("olive", "beige"),
    "offwhite": ("cream", "white"),
    "ivory": ("cream", "white"),
    "nude": ("beige", "peach"),
    "camel": ("tan", "beige", "brown"),
    "multicolour": ("multi",),
    "multicolor": ("multi",),
    "multicoloured": ("multi",),
    "multicolored": ("multi",),
}

# One thing, spelt several ways: the query is rewritten to the canonical spelling (the last word of a phrase
# then gets its plural or singular as usual), so 't shirt' never matches 'shirt' on its own.
SPELLINGS: Mapping[str, str] = {
    "t shirt": "tshirt",
    "t shirts": "tshirts",
    "tee shirt": "tshirt",
    "tee shirts": "tshirts",
    "flipflop": "flip flop",
    "flipflops": "flip flops",
    "trackpants": "track pants",
    "trackpant": "track pant",
    "sweat shirt": "sweatshirt",
    "sweat shirts": "sweatshirts",
    "hand bag": "handbag",
    "hand bags": "handbags",
    "back pack": "backpack",
    "back packs": "backpacks",
    "swim suit": "swimsuit",
    "swim wear": "swimwear",
    "foot ball": "football",
    "basket ball": "basketball",
}

# Words that, written after another word, name a different thing: a 't shirt' is not a shirt. A product
# whose only 'shirt' is in 't-shirt' does not match 'shirt' (it still matches 'tshirt').
NOT_THE_SAME: Mapping[str, tuple[str, ...]] = {
    "shirt": ("t shirt", "tee shirt", "sweat shirt", "polo shirt"),
    "shirts": ("t shirts", "tee shirts", "sweat shirts", "polo shirts"),
}
# fmt: on


def longest_key(table: Mapping[str, object]) -> int:
    """The number of words in the longest key of `table` (how far ahead a matcher has to look)."""
    return max(len(key.split()) for key in table)
