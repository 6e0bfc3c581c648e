"""The generated product picture: well-formed SVG in the product's colour and category, feed text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from domain.placeholder_image import COLOURS, UNKNOWN_COLOUR, placeholder_svg, silhouette

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("category", "fashion_category", "kind"),
    [
        ("Tshirts", "Topwear", "top"),
        ("Heels", "Shoes", "shoe"),
        ("Sports Shoes", None, "shoe"),
        ("Flip Flops", "Flip Flops", "shoe"),
        ("Backpacks", "Bags", "bag"),
        ("Dresses", "Dress", "dress"),
        ("Track Pants", "Bottomwear", "bottom"),
        ("Capris", "Bottomwear", "bottom"),
        ("Caps", "Headwear", "headwear"),
        ("Watches", "Watches", "watch"),
        ("Sunglasses", "Eyewear", "eyewear"),
        ("Footballs", "Sports Equipment", "ball"),
        (None, "Topwear", "top"),
        ("Gift Cards", None, "other"),
        (None, None, "other"),
    ],
)
def test_the_silhouette_follows_the_category(category, fashion_category, kind):
    assert silhouette(category, fashion_category) == kind


def test_the_svg_is_well_formed_and_painted_in_the_products_colour():
    svg = placeholder_svg("Heels", "Navy Blue", "Shoes")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    fills = [path.get("fill") for path in root.iter(f"{SVG}path")]
    assert COLOURS["navy blue"] in fills
    assert root.find(f"{SVG}text").text == "Heels · Navy Blue"


def test_an_unknown_colour_gets_a_neutral_fill_and_the_same_inputs_give_the_same_bytes():
    assert UNKNOWN_COLOUR in placeholder_svg("Tshirts", "Ultraviolet")
    assert placeholder_svg("Tshirts", "Red") == placeholder_svg("Tshirts", "Red")
    assert placeholder_svg("Tshirts", "Red") != placeholder_svg("Tshirts", "Blue")


def test_feed_text_is_escaped_so_the_svg_cannot_carry_markup():
    hostile = '<script>alert(1)</script>" onload="alert(2)'
    svg = placeholder_svg(hostile, "Red")
    root = ET.fromstring(svg)  # still well-formed
    assert not list(root.iter(f"{SVG}script"))
    assert "<script>" not in svg
    assert root.get("onload") is None
    assert root.find(f"{SVG}text").text.startswith("<script>")  # shown as text, literally
