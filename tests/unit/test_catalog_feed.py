"""Feed parsing: column mapping, required fields, price formats, line numbers, streaming."""

from __future__ import annotations

import gzip
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest

from domain.catalog_feed import (
    FeedFormatError,
    ProductRecord,
    RowRejection,
    parse_feed_row,
    read_feed,
)

HEADER = "aw_product_id,product_name,search_price,currency,description,merchant_image_url\n"


def parse(**row: str) -> ProductRecord | RowRejection:
    return parse_feed_row(row, line=7, feed_dir=Path("/feeds/shop"))


def record(**row: str) -> ProductRecord:
    result = parse(**row)
    assert isinstance(result, ProductRecord), result
    return result


def rejection(**row: str) -> str:
    result = parse(**row)
    assert isinstance(result, RowRejection), result
    assert result.line == 7
    return result.reason


def test_minimal_row() -> None:
    product = record(aw_product_id="42", product_name=" Linen Shirt ", search_price="98.0")
    assert product.id == 42
    assert product.product_name == "Linen Shirt"
    assert product.search_price == Decimal("98.00")
    assert product.currency == "GBP"
    assert product.in_stock is True
    assert product.is_active is True
    assert product.description is None and product.rrp_price is None and product.stock_quantity is None


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("98.0", "98.00", "GBP"),
        ("98", "98.00", "GBP"),
        ("98.00 GBP", "98.00", "GBP"),
        ("98.00 usd", "98.00", "USD"),
        ("EUR 12.5", "12.50", "EUR"),
        ("£12.50", "12.50", "GBP"),
        ("$ 7.99", "7.99", "USD"),
        ("1,299.00", "1299.00", "GBP"),
        ("0.125", "0.13", "GBP"),
        (".5", "0.50", "GBP"),
    ],
)
def test_search_price_formats(text: str, amount: str, currency: str) -> None:
    product = record(aw_product_id="1", product_name="x", search_price=text)
    assert product.search_price == Decimal(amount)
    assert str(product.search_price) == amount  # always two decimals, so hashes survive the database
    assert product.currency == currency


def test_currency_column_wins_over_price_suffix() -> None:
    assert (
        record(aw_product_id="1", product_name="x", search_price="98.00 GBP", currency="usd").currency
        == "USD"
    )


@pytest.mark.parametrize("text", ["abc", "-5", "12,50", "1.2.3", "98 GBPX", "NaN", "inf"])
def test_unparsable_search_price_is_rejected(text: str) -> None:
    assert (
        rejection(aw_product_id="1", product_name="x", search_price=text)
        == f"unparsable search_price {text!r}"
    )


def test_required_fields_have_specific_reasons() -> None:
    assert rejection(product_name="x", search_price="1") == "missing aw_product_id"
    assert rejection(aw_product_id="  ", product_name="x", search_price="1") == "missing aw_product_id"
    assert (
        rejection(aw_product_id="x", product_name="x", search_price="1")
        == "aw_product_id 'x' is not an integer"
    )
    assert rejection(aw_product_id="1.5", product_name="x", search_price="1") == (
        "aw_product_id '1.5' is not an integer"
    )
    assert (
        rejection(aw_product_id="0", product_name="x", search_price="1")
        == "aw_product_id '0' is out of range"
    )
    assert rejection(aw_product_id=str(2**63), product_name="x", search_price="1").endswith("is out of range")
    assert rejection(aw_product_id="1", search_price="1") == "missing product_name"
    assert rejection(aw_product_id="1", product_name=" ", search_price="1") == "empty product_name"
    assert rejection(aw_product_id="1", product_name="x") == "missing search_price"
    assert rejection(aw_product_id="1", product_name="x", search_price="1", currency="pounds") == (
        "currency 'pounds' is not a three-letter code"
    )
    assert rejection(aw_product_id="1", product_name="x", search_price="99999999999") == (
        "search_price '99999999999' is out of range"
    )


def test_spreadsheet_style_integer_id_is_accepted() -> None:
    assert record(aw_product_id="40026645008.0", product_name="x", search_price="1").id == 40026645008


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("0", False), ("TRUE", True), ("false", False), ("yes", True), ("No", False)],
)
def test_in_stock_values(text: str, expected: bool) -> None:
    assert record(aw_product_id="1", product_name="x", search_price="1", in_stock=text).in_stock is expected


def test_in_stock_blank_follows_stock_quantity() -> None:
    assert record(aw_product_id="1", product_name="x", search_price="1", stock_quantity="0").in_stock is False
    assert record(aw_product_id="1", product_name="x", search_price="1", stock_quantity="3").in_stock is True
    assert record(aw_product_id="1", product_name="x", search_price="1", in_stock="?").in_stock is True


def test_fashion_and_image_columns_are_mapped() -> None:
    product = record(
        aw_product_id="1",
        product_name="x",
        search_price="1",
        image_url="https://cdn.example.com/1.jpg",
        **{"Fashion:suitable_for": "Female", "Fashion:category": "Topwear", "Fashion:size": "M"},
    )
    assert product.aw_image_url == "https://cdn.example.com/1.jpg"
    assert (product.fashion_suitable_for, product.fashion_category, product.fashion_size) == (
        "Female",
        "Topwear",
        "M",
    )


def test_explicit_aw_image_url_wins_over_image_url() -> None:
    product = record(
        aw_product_id="1",
        product_name="x",
        search_price="1",
        image_url="https://a/1.jpg",
        aw_image_url="https://b/1.jpg",
    )
    assert product.aw_image_url == "https://b/1.jpg"


def test_relative_image_paths_resolve_against_the_feed_folder() -> None:
    product = record(
        aw_product_id="1",
        product_name="x",
        search_price="1",
        merchant_image_url="images/1.jpg",
        large_image="/srv/img/1.jpg",
        aw_image_url="//cdn.example.com/1.jpg",
    )
    assert product.merchant_image_url == str(Path("/feeds/shop/images/1.jpg").resolve())
    assert product.large_image == "/srv/img/1.jpg"
    assert product.aw_image_url == "//cdn.example.com/1.jpg"


def test_bad_optional_numbers_become_none_and_unknown_columns_are_ignored() -> None:
    product = record(
        aw_product_id="1",
        product_name="x",
        search_price="1",
        rrp_price="n/a",
        stock_quantity="lots",
        reviews="9" * 20,
        average_rating="4.5",
        brand_id="77",
        mystery_column="ignored",
    )
    assert (product.rrp_price, product.stock_quantity, product.reviews) == (None, None, None)
    assert product.average_rating == 4.5
    assert product.brand_id == 77


def test_content_hash_is_stable_and_covers_every_field() -> None:
    product = record(aw_product_id="1163", product_name="Blue Jersey", search_price="50.61", currency="GBP")
    # A literal: the hash must not depend on the process (no hash()), or re-imports would rewrite everything.
    assert product.content_hash() == "5a61ee9dc0847f8db388e398be6aac59a8e5d2fb"
    assert (
        product.content_hash()
        == record(
            aw_product_id="1163", product_name="Blue Jersey", search_price="50.610", currency="GBP"
        ).content_hash()
    )
    for changed in (
        record(aw_product_id="1163", product_name="Blue Jersey", search_price="50.62", currency="GBP"),
        record(
            aw_product_id="1163",
            product_name="Blue Jersey",
            search_price="50.61",
            currency="GBP",
            colour="Blue",
        ),
    ):
        assert changed.content_hash() != product.content_hash()


# --- files --------------------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "feed.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_line_numbers_are_physical_lines_with_multiline_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + '1,Good one,10.00,GBP,"a description\nspanning three\nlines, with ""quotes""",images/1.jpg\n'  # 2-4
        + ",No id,10.00,GBP,,\n"  # line 5
        + "\n"  # line 6, blank
        + '3,,10.00,GBP,"another\r\ntwo-liner",\n'  # lines 7-8
        + "4,Bad price,abc,GBP,,\n"  # line 9
        + "5,Too many,1,GBP,,,extra\n"  # line 10
        + "6,Last,£1.00,,,",  # line 11, no final newline
    )
    rows = list(read_feed(path))
    assert [(row.line, row.reason) for row in rows if isinstance(row, RowRejection)] == [
        (5, "missing aw_product_id"),
        (7, "empty product_name"),
        (9, "unparsable search_price 'abc'"),
        (10, "row has 7 fields, header has 6"),
    ]
    good = [row for row in rows if isinstance(row, ProductRecord)]
    assert [row.id for row in good] == [1, 6]
    assert good[0].description == 'a description\nspanning three\nlines, with "quotes"'
    assert good[0].merchant_image_url == str(tmp_path.resolve() / "images" / "1.jpg")
    assert good[1].currency == "GBP"


def test_bom_gzip_and_pipe_delimiter(tmp_path: Path) -> None:
    text = "\ufeffaw_product_id|product_name|search_price\n1|Pipe Shirt|12.00\n"
    gz = tmp_path / "feed.csv.gz"
    with gzip.open(gz, "wt", encoding="utf-8", newline="") as handle:
        handle.write(text)
    for path in (write(tmp_path, text), gz):
        [product] = read_feed(path)
        assert isinstance(product, ProductRecord)
        assert (product.id, product.product_name) == (1, "Pipe Shirt")


def test_header_without_required_columns_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FeedFormatError, match="aw_product_id"):
        list(read_feed(write(tmp_path, "id;name;price\n1;x;2\n")))
    with pytest.raises(FeedFormatError, match="empty feed"):
        list(read_feed(write(tmp_path, "")))


def test_read_feed_streams(tmp_path: Path) -> None:
    rows = 10_000
    description = "A long description that makes every row a few hundred bytes. " * 4
    with (tmp_path / "big.csv").open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        for product_id in range(1, rows + 1):
            handle.write(f'{product_id},Product {product_id},9.99,GBP,"{description}",\n')
    size = (tmp_path / "big.csv").stat().st_size

    tracemalloc.start()
    try:
        count = sum(1 for _ in read_feed(tmp_path / "big.csv"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte file: the feed is not streamed"
