"""Turning an enriched catalog row into the product shape every endpoint returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.api_models import ProductResult


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def product_result(row: Mapping[str, Any], *, score: float) -> ProductResult:
    return ProductResult(
        product_id=int(row["id"]),
        score=round(float(score), 6),
        product_name=row["product_name"],
        description=row.get("description"),
        price=_number(row.get("search_price")),
        rrp_price=_number(row.get("rrp_price")),
        currency=row.get("currency"),
        image_url=row.get("image_url"),
        product_url=row.get("aw_deep_link"),
        merchant_name=row.get("merchant_name"),
        brand_name=row.get("brand_name"),
        category_name=row.get("category_name"),
        colour=row.get("colour"),
        in_stock=row.get("in_stock"),
        stock_quantity=row.get("stock_quantity"),
    )
