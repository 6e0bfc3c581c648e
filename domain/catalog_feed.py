"""Awin product feeds (CSV) turned into `ProductRecord`s, one row at a time.

Why streaming: real feeds run to millions of rows, so `read_feed` holds one row in memory and yields either a
record or a `RowRejection` (physical line number + a specific reason). A bad row is reported and skipped; it
never stops the import. Only a file that cannot be a feed at all (no header, no `aw_product_id` column)
raises `FeedFormatError`.

Decisions the rest of the code relies on:
- Line numbers are the physical line on which the row *starts*, counting the header as line 1; a quoted
  field that spans lines makes the next row start further down, exactly as an editor shows it.
- Currency: the row's `currency` column; else the code or symbol written in `search_price` ("98.00 USD",
  "$98"); else GBP, Awin's home currency and the currency of the bundled fashion feed.
- `in_stock`: 1/0/true/false/yes/no (any case); blank or unknown falls back to `stock_quantity > 0` when the
  quantity is known, else True (the merchant lists it for sale).
- Optional numeric columns that do not parse (or do not fit the database column) become None: a bad review
  count is no reason to drop a product. Required ones (`aw_product_id`, `product_name`, `search_price`)
  reject the row.
- Image columns that are not URLs are local paths; relative ones are made absolute against the feed's folder.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import astuple, dataclass, fields
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import IO

DEFAULT_CURRENCY = "GBP"
REQUIRED_COLUMNS = ("aw_product_id", "product_name", "search_price")

# Limits of the database columns, checked here so one row can never fail a whole batch at write time.
_MAX_BIGINT = 2**63 - 1
_MAX_INT = 2**31 - 1
_MAX_PRICE = Decimal("9999999999.99")  # Numeric(12, 2)
_CENTS = Decimal("0.01")

# Feed column -> record field, where the names differ. Awin exports `image_url` in some feed layouts where
# others say `aw_image_url`; the explicit `aw_image_url` wins when a feed carries both.
_ALIASES = {
    "aw_product_id": "id",
    "Fashion:suitable_for": "fashion_suitable_for",
    "Fashion:category": "fashion_category",
    "Fashion:size": "fashion_size",
}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}
_SYMBOLS = {"£": "GBP", "$": "USD", "€": "EUR", "¥": "JPY"}
_PRICE = re.compile(
    r"^(?P<pre>[A-Za-z]{3})?\s*(?P<sym>[£$€¥])?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\s*(?P<post>[A-Za-z]{3})?$"
)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^//")


class FeedFormatError(ValueError):
    """The file as a whole is not a feed we can read (as opposed to a single bad row)."""


@dataclass(frozen=True, slots=True)
class ProductRecord:
    id: int
    product_name: str
    description: str | None
    search_price: Decimal
    currency: str
    merchant_image_url: str | None
    aw_image_url: str | None
    large_image: str | None
    merchant_id: int | None
    merchant_name: str | None
    brand_name: str | None
    brand_id: int | None
    in_stock: bool
    stock_quantity: int | None
    category_id: int | None
    category_name: str | None
    aw_deep_link: str | None
    rrp_price: Decimal | None
    colour: str | None
    fashion_category: str | None
    fashion_size: str | None
    fashion_suitable_for: str | None
    keywords: str | None
    quality_score: float | None
    average_rating: float | None
    reviews: int | None
    is_active: bool = True

    def content_hash(self) -> str:
        """sha1 over every field, in declaration order, in a form that survives a database round trip.

        Prices are written with two decimals because Numeric(12, 2) gives back 98.00 for 98.0; that way a
        record read back from the database hashes the same as the one that was written.
        """
        values = [_canonical(value) for value in astuple(self)]
        payload = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha1(payload.encode("utf-8")).hexdigest()


FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in fields(ProductRecord))


@dataclass(frozen=True, slots=True)
class RowRejection:
    line: int
    reason: str


def _canonical(value: object) -> object:
    if isinstance(value, Decimal):
        return f"{value.quantize(_CENTS, rounding=ROUND_HALF_UP):f}"
    if isinstance(value, float):
        return repr(value)
    return value


# --- reading ------------------------------------------------------------------------------------------------


def read_feed(path: Path) -> Iterator[ProductRecord | RowRejection]:
    """Stream a feed (CSV, optionally .gz), yielding a record or a rejection per data row."""
    path = Path(path)
    feed_dir = path.resolve().parent
    with _open_text(path) as handle:
        first = handle.readline()
        if not first.strip():
            raise FeedFormatError(f"{path}: empty feed, no header row")
        delimiter = _guess_delimiter(first)
        header = [name.strip() for name in next(csv.reader([first], delimiter=delimiter))]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise FeedFormatError(
                f"{path}: header has no {', '.join(missing)} column (found: {', '.join(header[:12])}...)"
            )
        # The reader counts the lines it consumed; the header was consumed before it existed.
        reader = csv.reader(handle, delimiter=delimiter)
        consumed = 1
        while True:
            start = consumed + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                consumed = reader.line_num + 1
                yield RowRejection(start, f"malformed CSV: {error}")
                continue
            consumed = reader.line_num + 1
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # blank line
            if len(values) != len(header):
                yield RowRejection(start, f"row has {len(values)} fields, header has {len(header)}")
                continue
            yield parse_feed_row(dict(zip(header, values, strict=True)), line=start, feed_dir=feed_dir)


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig drops a byte-order mark; "replace" keeps one mis-encoded byte from aborting a million rows.
    # newline="" is what the csv module needs to keep newlines inside quoted fields intact.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return path.open("r", encoding="utf-8-sig", errors="replace", newline="")


def _guess_delimiter(header_line: str) -> str:
    # Awin offers comma, pipe and tab separated exports; the header names never contain any of them.
    counts = {delimiter: header_line.count(delimiter) for delimiter in (",", "|", "\t", ";")}
    return max(counts, key=lambda delimiter: counts[delimiter])


# --- one row ------------------------------------------------------------------------------------------------


def parse_feed_row(
    row: Mapping[str, str | None], *, line: int, feed_dir: Path
) -> ProductRecord | RowRejection:
    """Map one feed row (header name -> raw text) to a record, or say precisely why it cannot be one."""
    values = {_ALIASES.get(key.strip(), key.strip()): _clean(raw) for key, raw in row.items() if key}
    if values.get("aw_image_url") is None and values.get("image_url") is not None:
        values["aw_image_url"] = values["image_url"]

    raw_id = values.get("id")
    if raw_id is None:
        return RowRejection(line, "missing aw_product_id")
    product_id = _parse_int(raw_id)
    if product_id is None:
        return RowRejection(line, f"aw_product_id {raw_id!r} is not an integer")
    if not 0 < product_id <= _MAX_BIGINT:
        return RowRejection(line, f"aw_product_id {raw_id!r} is out of range")

    if "product_name" not in values:
        return RowRejection(line, "missing product_name")
    name = values.get("product_name")
    if name is None:
        return RowRejection(line, "empty product_name")

    raw_price = values.get("search_price")
    if raw_price is None:
        return RowRejection(line, "missing search_price")
    price = _parse_price(raw_price)
    if price is None:
        return RowRejection(line, f"unparsable search_price {raw_price!r}")
    amount, price_currency = price
    if amount > _MAX_PRICE:
        return RowRejection(line, f"search_price {raw_price!r} is out of range")

    currency = values.get("currency") or price_currency or DEFAULT_CURRENCY
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        return RowRejection(line, f"currency {currency!r} is not a three-letter code")

    rrp_text = values.get("rrp_price")
    rrp = _parse_price(rrp_text) if rrp_text is not None else None
    stock_quantity = _optional_int(values.get("stock_quantity"), _MAX_INT)
    return ProductRecord(
        id=product_id,
        product_name=name,
        description=values.get("description"),
        search_price=amount,
        currency=currency.upper(),
        merchant_image_url=_image(values.get("merchant_image_url"), feed_dir),
        aw_image_url=_image(values.get("aw_image_url"), feed_dir),
        large_image=_image(values.get("large_image"), feed_dir),
        merchant_id=_optional_int(values.get("merchant_id"), _MAX_BIGINT),
        merchant_name=values.get("merchant_name"),
        brand_name=values.get("brand_name"),
        brand_id=_optional_int(values.get("brand_id"), _MAX_BIGINT),
        in_stock=_parse_in_stock(values.get("in_stock"), stock_quantity),
        stock_quantity=stock_quantity,
        category_id=_optional_int(values.get("category_id"), _MAX_BIGINT),
        category_name=values.get("category_name"),
        aw_deep_link=values.get("aw_deep_link"),
        rrp_price=rrp[0] if rrp is not None and rrp[0] <= _MAX_PRICE else None,
        colour=values.get("colour"),
        fashion_category=values.get("fashion_category"),
        fashion_size=values.get("fashion_size"),
        fashion_suitable_for=values.get("fashion_suitable_for"),
        keywords=values.get("keywords"),
        quality_score=_optional_float(values.get("quality_score")),
        average_rating=_optional_float(values.get("average_rating")),
        reviews=_optional_int(values.get("reviews"), _MAX_INT),
    )


def _clean(raw: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; blank means absent in Awin feeds.
    if raw is None:
        return None
    text = raw.replace("\x00", "").strip()
    return text or None


def _parse_int(text: str) -> int | None:
    # Spreadsheet round trips turn 1163 into "1163.0"; accept that, refuse "12.5" and "abc".
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def _optional_int(text: str | None, maximum: int) -> int | None:
    if text is None:
        return None
    number = _parse_int(text)
    if number is None or not -maximum <= number <= maximum:
        return None
    return number


def _optional_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _parse_price(text: str) -> tuple[Decimal, str | None] | None:
    """Read "98.0", "98.00 GBP", "GBP 98", "£12.50", "1,299.00" as (amount to the cent, currency if any)."""
    match = _PRICE.match(text.strip())
    if match is None:
        return None
    currency = match["pre"] or match["post"] or _SYMBOLS.get(match["sym"] or "")
    amount = Decimal(match["num"].replace(",", "")).quantize(_CENTS, rounding=ROUND_HALF_UP)
    return amount, currency.upper() if currency else None


def _parse_in_stock(text: str | None, stock_quantity: int | None) -> bool:
    if text is not None:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return stock_quantity > 0 if stock_quantity is not None else True


def _image(value: str | None, feed_dir: Path) -> str | None:
    if value is None or _URL.match(value):
        return value
    path = Path(value)
    return str(path if path.is_absolute() else (feed_dir / path).resolve())
