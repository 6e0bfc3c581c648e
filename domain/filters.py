"""Search filters: what a shopper may narrow results by, validated once at the edge.

The same model travels from the API service to the index runner, which applies it inside the FAISS search
(see runners/vector_index.py), so a filtered query still returns `limit` results whenever enough products match.
Brands, categories and merchants are matched by name, exactly as the catalog spells them.

What each field means, on every path (vector index, keyword search, cold-start recommendations, test fakes);
tests/filter_cases.py holds the table of cases that every implementation is run against:
- a price bound is inclusive, and a product without a price is outside any price range;
- `in_stock` keeps only products whose stock state equals it;
- a list of names keeps products whose name is one of them (a product without one never matches);
- an absent field, `null` and an empty list all mean "no constraint". A storefront sends the names ticked in a
  facet; with none ticked it sends `[]`, and the shopper expects every brand, not an empty page. The empty list
  is turned into None here, at validation, so no path can read it differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The name-list filters and the catalog column each one matches.
NAME_FILTERS: tuple[tuple[str, str], ...] = (
    ("brands", "brand_name"),
    ("categories", "category_name"),
    ("merchants", "merchant_name"),
)


class SearchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    in_stock: bool | None = None
    brands: list[str] | None = Field(None, max_length=200)
    categories: list[str] | None = Field(None, max_length=200)
    merchants: list[str] | None = Field(None, max_length=200)

    @field_validator("brands", "categories", "merchants")
    @classmethod
    def _empty_list_is_no_constraint(cls, names: list[str] | None) -> list[str] | None:
        return names or None

    @model_validator(mode="after")
    def _price_range(self) -> SearchFilters:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price must not be greater than max_price")
        return self

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())

    def names(self) -> list[tuple[str, list[str]]]:
        """(catalog column, names) for each name-list filter that constrains: given and not empty."""
        return [(column, values) for field, column in NAME_FILTERS if (values := getattr(self, field))]

    def admits(self, row: Mapping[str, Any]) -> bool:
        """Whether a catalog row (column -> value, as the database gives it) passes: the reference semantics."""
        price = row.get("search_price")
        if self.min_price is not None and (price is None or float(price) < self.min_price):
            return False
        if self.max_price is not None and (price is None or float(price) > self.max_price):
            return False
        if self.in_stock is not None and bool(row.get("in_stock")) != self.in_stock:
            return False
        return all(row.get(column) in values for column, values in self.names())

    def cache_token(self) -> str:
        """A canonical text form: equal filters give equal tokens whatever the list order."""
        parts = []
        for name, value in sorted(self.model_dump(exclude_none=True).items()):
            if isinstance(value, list):
                value = ",".join(sorted(value))
            parts.append(f"{name}={value}")
        return "&".join(parts)
