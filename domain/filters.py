"""Search filters: what a shopper may narrow results by, validated once at the edge.

The same model travels from the API service to the index runner, which applies it inside the FAISS search
(see runners/vector_index.py), so a filtered query still returns `limit` results whenever enough products match.
Brands, categories and merchants are matched by name, exactly as the catalog spells them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SearchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    in_stock: bool | None = None
    brands: list[str] | None = Field(None, max_length=200)
    categories: list[str] | None = Field(None, max_length=200)
    merchants: list[str] | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _price_range(self) -> SearchFilters:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price must not be greater than max_price")
        return self

    @property
    def is_empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())

    def cache_token(self) -> str:
        """A canonical text form: equal filters give equal tokens whatever the list order."""
        parts = []
        for name, value in sorted(self.model_dump(exclude_none=True).items()):
            if isinstance(value, list):
                value = ",".join(sorted(value))
            parts.append(f"{name}={value}")
        return "&".join(parts)
