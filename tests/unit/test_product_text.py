"""product_document: the text a product is embedded as."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from domain.catalog_feed import ProductRecord
from domain.product_text import MAX_CHARS, product_document


def _record(**overrides: object) -> ProductRecord:
    values: dict[str, object] = {
        "id": 1163,
        "product_name": "Nike Sahara Team India Fanwear Round Neck Jersey",
        "description": "Men tshirts in blue, sports wear for summer.",
        "search_price": Decimal("50.61"),
        "currency": "GBP",
        "merchant_image_url": "images/1163.jpg",
        "aw_image_url": None,
        "large_image": None,
        "merchant_id": 1,
        "merchant_name": "Fashion Product Images sample",
        "brand_name": "Nike",
        "brand_id": None,
        "in_stock": True,
        "stock_quantity": 38,
        "category_id": None,
        "category_name": "Tshirts",
        "aw_deep_link": None,
        "rrp_price": None,
        "colour": "Blue",
        "fashion_category": "Topwear",
        "fashion_size": None,
        "fashion_suitable_for": "Men",
        "keywords": "Sports,Summer,2011",
        "quality_score": None,
        "average_rating": None,
        "reviews": None,
    }
    values.update(overrides)
    return ProductRecord(**values)  # type: ignore[arg-type]


def test_fields_in_order_without_repeats() -> None:
    text = product_document(_record())
    assert text == (
        "Nike Sahara Team India Fanwear Round Neck Jersey. Tshirts. Topwear. Blue. Men. "
        "Men tshirts in blue, sports wear for summer. 2011"
    )
    assert text.count("Nike") == 1, "the brand is already in the name"
    assert "Sports" not in text, "a keyword the description already says is dropped"


def test_the_shopper_fields_come_before_the_free_text() -> None:
    text = product_document(_record(product_name="Ankle Boots", brand_name="Dune", colour="Black"))
    assert text.index("Ankle Boots") < text.index("Dune") < text.index("Tshirts") < text.index("Black")
    assert text.index("Men.") < text.index("sports wear")


def test_words_are_matched_whole_and_regardless_of_case() -> None:
    text = product_document(_record(product_name="Bluebell print dress", colour="blue", brand_name="NIKE"))
    assert "blue." in text.lower(), "'blue' is not said by 'Bluebell'"
    assert "NIKE" in text


def test_html_and_entities_are_reduced_to_plain_text() -> None:
    text = product_document(
        _record(description="<p>Soft&nbsp;cotton &amp; linen<br/>blend.</p>  <ul><li>Slim fit</li></ul>")
    )
    assert "Soft cotton & linen blend. Slim fit" in text
    assert "<" not in text and "&amp;" not in text


def test_keywords_already_said_or_repeated_are_dropped() -> None:
    text = product_document(_record(keywords="blue; Winter | jersey, Cricket, cricket, , Men"))
    assert text.endswith("summer. Winter, Cricket")


def test_long_descriptions_are_cut_at_a_word_boundary() -> None:
    text = product_document(_record(description="word " * 400))
    assert len(text) <= MAX_CHARS
    assert text.endswith("word")
    assert text.startswith("Nike Sahara")
    assert len(product_document(_record(description="x" * 5000), max_chars=100)) <= 100


def test_any_object_with_the_attributes_will_do() -> None:
    assert product_document(SimpleNamespace(product_name="Red scarf", colour=None, brand_name="")) == "Red scarf"
    assert product_document(SimpleNamespace()) == ""
    assert product_document(SimpleNamespace(product_name="Cap", keywords=None, description="  ")) == "Cap"
