"""A deterministic synthetic fashion catalog, for demos and load tests that need more than the real feeds.

Same `count` and `seed` give the same records, field for field, on any machine and Python version: only
`random.Random(seed)` drives the choices (never `hash()`, which is salted per process). Records are built
lazily, so `demo_products(1_000_000)` costs no memory up front. They carry no image: image search needs
the real photos of the fashion feed. Category names follow that feed's plural article types ("Tshirts",
"Heels", "Backpacks"), so filters behave the same on both catalogs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from domain.catalog_feed import ProductRecord


@dataclass(frozen=True, slots=True)
class _ArticleType:
    category: str  # plural, as category_name
    singular: str  # as it reads in a product name
    fashion_category: str
    group: str  # apparel | footwear | accessories
    genders: tuple[str, ...]
    materials: tuple[str, ...]
    price: tuple[int, int]  # typical mid-tier price range, GBP


_APPAREL_SIZES = "XS,S,M,L,XL"
_FOOTWEAR_SIZES = "5,6,7,8,9,10,11"
_ONE_SIZE = "One Size"
_MWU = ("Men", "Women", "Unisex")
_MW = ("Men", "Women")
_W = ("Women",)

_T = _ArticleType  # a short name keeps the table below one row per type

_TYPES = (
    _T("Tshirts", "T-Shirt", "Topwear", "apparel", _MWU, ("cotton", "organic cotton", "linen"), (12, 45)),
    _T("Shirts", "Shirt", "Topwear", "apparel", _MW, ("cotton", "linen", "denim", "flannel"), (25, 90)),
    _T("Tops", "Top", "Topwear", "apparel", _W, ("cotton", "viscose", "silk", "jersey"), (15, 70)),
    _T("Sweatshirts", "Sweatshirt", "Topwear", "apparel", _MWU, ("fleece", "cotton"), (30, 95)),
    _T("Sweaters", "Sweater", "Topwear", "apparel", _MW, ("wool", "merino wool", "cashmere"), (40, 180)),
    _T("Jackets", "Jacket", "Topwear", "apparel", _MW, ("denim", "leather", "nylon", "suede"), (60, 280)),
    _T("Coats", "Coat", "Topwear", "apparel", _MW, ("wool", "cotton twill", "down"), (90, 350)),
    _T("Blazers", "Blazer", "Topwear", "apparel", _MW, ("wool", "linen", "cotton twill"), (70, 260)),
    _T("Dresses", "Dress", "Dress", "apparel", _W, ("cotton", "silk", "viscose", "linen"), (30, 190)),
    _T("Skirts", "Skirt", "Bottomwear", "apparel", _W, ("denim", "cotton", "pleated satin"), (25, 110)),
    _T("Jeans", "Jeans", "Bottomwear", "apparel", _MW, ("denim", "stretch denim"), (40, 140)),
    _T("Trousers", "Trousers", "Bottomwear", "apparel", _MW, ("cotton twill", "wool", "linen"), (35, 130)),
    _T("Shorts", "Shorts", "Bottomwear", "apparel", _MWU, ("cotton", "denim", "nylon"), (18, 60)),
    _T("Track Pants", "Track Pants", "Bottomwear", "apparel", _MWU, ("polyester", "fleece"), (25, 80)),
    _T("Leggings", "Leggings", "Bottomwear", "apparel", _W, ("stretch jersey", "nylon"), (20, 90)),
    _T("Sneakers", "Sneakers", "Shoes", "footwear", _MWU, ("canvas", "leather", "mesh"), (45, 170)),
    _T("Sports Shoes", "Running Shoes", "Shoes", "footwear", _MW, ("mesh", "knit"), (55, 180)),
    _T("Formal Shoes", "Oxford Shoes", "Shoes", "footwear", ("Men",), ("leather", "suede"), (60, 220)),
    _T("Heels", "Heels", "Shoes", "footwear", _W, ("leather", "suede", "satin"), (45, 240)),
    _T("Flats", "Ballet Flats", "Shoes", "footwear", _W, ("leather", "suede"), (30, 120)),
    _T("Boots", "Ankle Boots", "Shoes", "footwear", _MW, ("leather", "suede"), (70, 260)),
    _T("Sandals", "Sandals", "Sandal", "footwear", _MWU, ("leather", "rubber", "cork"), (20, 110)),
    _T("Backpacks", "Backpack", "Bags", "accessories", _MWU, ("nylon", "canvas", "leather"), (30, 160)),
    _T("Handbags", "Handbag", "Bags", "accessories", _W, ("leather", "faux leather", "suede"), (40, 420)),
    _T("Wallets", "Wallet", "Wallets", "accessories", _MW, ("leather", "faux leather"), (18, 95)),
    _T("Belts", "Belt", "Belts", "accessories", _MW, ("leather", "canvas"), (15, 70)),
    _T("Watches", "Watch", "Watches", "accessories", _MWU, ("stainless steel", "leather"), (60, 450)),
    _T("Sunglasses", "Sunglasses", "Eyewear", "accessories", _MWU, ("acetate", "metal"), (25, 200)),
    _T("Caps", "Cap", "Headwear", "accessories", _MWU, ("cotton", "wool blend"), (12, 40)),
    _T("Scarves", "Scarf", "Scarves", "accessories", _MWU, ("wool", "silk", "cashmere"), (18, 140)),
)

# fmt: off
# (name, price multiplier): budget labels sit below the type's range, premium ones above it.
_BRANDS = (
    ("Northwind", 1.0), ("Harbour & Pine", 1.2), ("Atelier Nova", 1.8), ("Kestrel", 0.9),
    ("Meridian Supply", 1.1), ("Lumen", 0.8), ("Common Thread", 0.75), ("Orla Vance", 1.9),
    ("Fieldhouse", 1.0), ("Stride Lab", 1.1), ("Bramble", 0.85), ("Corvid", 1.3),
    ("Saltmarsh", 1.0), ("Velo Athletic", 1.05), ("Ivy Row", 1.4), ("Basecamp", 0.95),
    ("Marlow", 1.5), ("Tidewell", 0.9), ("Urban Fable", 0.8), ("Quill & Co", 1.6),
    ("Sora", 1.2), ("Everday", 0.7), ("Hollis", 1.3), ("Rove", 1.0), ("Albion Works", 1.7),
)
_COLOURS = (
    "Black", "White", "Navy Blue", "Grey", "Beige", "Brown", "Olive", "Red", "Burgundy", "Pink",
    "Green", "Blue", "Mustard", "Cream", "Tan",
)
_MERCHANTS = ((5101, "Vitrine Outlet"), (5102, "High Street Fashion Co"), (5103, "Stride Sports"),
              (5104, "Carry & Co"))
# fmt: on
_FITS = {
    "apparel": ("a relaxed fit", "a slim fit", "a regular fit", "an oversized fit", "a tailored fit"),
    "footwear": ("a cushioned footbed", "a flexible rubber sole", "a padded collar", "a lightweight build"),
    "accessories": ("a minimalist design", "gold-tone hardware", "a timeless silhouette", "clean lines"),
}
_OCCASIONS = ("everyday wear", "the office", "weekends away", "evenings out", "the gym", "travel")
_SEASONS = ("Spring", "Summer", "Fall", "Winter")
_GIFT = ("Store in the dust bag provided.", "Comes gift-boxed.")
_CENTS = Decimal("0.01")


def demo_products(count: int, *, seed: int = 7, first_id: int = 900_000_000) -> Iterator[ProductRecord]:
    """`count` synthetic products with ids `first_id`, `first_id + 1`, ... (far above real Awin ids)."""
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    for offset in range(count):
        yield _product(rng, first_id + offset)


def _product(rng: random.Random, product_id: int) -> ProductRecord:
    type_index = rng.randrange(len(_TYPES))
    article = _TYPES[type_index]
    brand_index = rng.randrange(len(_BRANDS))
    brand, tier = _BRANDS[brand_index]
    gender = rng.choice(article.genders)
    colour = rng.choice(_COLOURS)
    material = rng.choice(article.materials)
    season = rng.choice(_SEASONS)
    merchant_id, merchant_name = _merchant(rng, article.group)

    low, high = article.price
    price = _retail_price(rng.uniform(low, high) * tier)
    # Roughly a third is on sale: the recommended retail price is then 10-50% above the selling price.
    rrp = _retail_price(float(price) * rng.uniform(1.1, 1.5)) if rng.random() < 0.35 else price
    in_stock = rng.random() < 0.9
    # Review counts have a long tail: most products have a handful, a few have thousands.
    reviews = min(int(rng.paretovariate(1.3) * 3) - 3, 5000) if rng.random() < 0.8 else 0

    possessive = {"Men": "Men's", "Women": "Women's", "Unisex": "Unisex"}[gender]
    name = f"{brand} {possessive} {colour} {material.title()} {article.singular}"
    return ProductRecord(
        id=product_id,
        product_name=name,
        description=_description(rng, article, brand, colour, material),
        search_price=price,
        currency="GBP",
        merchant_image_url=None,
        aw_image_url=None,
        large_image=None,
        merchant_id=merchant_id,
        merchant_name=merchant_name,
        brand_name=brand,
        brand_id=1000 + brand_index,
        in_stock=in_stock,
        stock_quantity=rng.randint(1, 120) if in_stock else 0,
        category_id=100 + type_index,
        category_name=article.category,
        aw_deep_link=f"https://shop.example.com/p/{product_id}",
        rrp_price=rrp,
        colour=colour,
        fashion_category=article.fashion_category,
        fashion_size={"apparel": _APPAREL_SIZES, "footwear": _FOOTWEAR_SIZES}.get(article.group, _ONE_SIZE),
        fashion_suitable_for=gender,
        keywords=",".join((article.group.title(), season, material, colour.lower())),
        quality_score=None,
        average_rating=round(rng.uniform(3.0, 5.0), 1) if reviews else None,
        reviews=reviews,
    )


def _merchant(rng: random.Random, group: str) -> tuple[int, str]:
    # Merchants specialise a little, as real ones do, but the general store sells everything.
    specialist = {"apparel": _MERCHANTS[1], "footwear": _MERCHANTS[2], "accessories": _MERCHANTS[3]}[group]
    return specialist if rng.random() < 0.6 else _MERCHANTS[0]


def _retail_price(amount: float) -> Decimal:
    # Shop prices end in .99 or .00 (or .50 for cheap things), not in random cents.
    whole = max(4, int(amount))
    cents = "0.99" if whole < 100 else "0.00"
    if whole < 30 and amount - whole >= 0.5:
        cents = "0.50"
    return (Decimal(whole) + Decimal(cents)).quantize(_CENTS, rounding=ROUND_HALF_UP)


def _description(rng: random.Random, article: _ArticleType, brand: str, colour: str, material: str) -> str:
    noun = article.singular.lower()
    # "A pair of navy blue jeans", "An olive jacket".
    if noun.endswith("s"):
        opening = f"A pair of {colour.lower()} {noun}"
    else:
        opening = f"{'An' if colour[0] in 'AEIOU' else 'A'} {colour.lower()} {noun}"
    sentences = (
        f"{opening} from {brand} in {material}, with {rng.choice(_FITS[article.group])}.",
        f"Made for {rng.choice(_OCCASIONS)} and easy to pair with the rest of your wardrobe.",
        _care(rng, article.group, material),
    )
    return " ".join(sentences)


def _care(rng: random.Random, group: str, material: str) -> str:
    # The care line follows the material, so a satin heel is never told to brush its suede.
    if group == "accessories":
        return rng.choice(_GIFT)
    if "suede" in material:
        return "Brush gently with a suede brush to restore the nap."
    if "leather" in material:
        return "Wipe clean and condition the leather now and then."
    if group == "footwear":
        return "Wipe clean with a damp cloth."
    if any(delicate in material for delicate in ("wool", "cashmere", "silk")):
        return "Hand wash cold or dry clean; dry flat."
    return "Machine washable at 30°C."
