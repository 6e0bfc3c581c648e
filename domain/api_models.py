"""The public wire format of the JSON API: what clients send and what they get back.

Requests refuse unknown fields, so a typo (`"limt": 5`) is a 400 that names the field rather than a silently
ignored parameter. The seed's examples are valid requests as they are.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.filters import SearchFilters

SearchMode = Literal["hybrid", "vector", "keyword"]
QueryText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=1000)


class SearchRequest(Page):
    query: QueryText
    filters: SearchFilters | None = None
    mode: SearchMode | None = Field(
        None, description="Retrieval mode; the server's default (hybrid where it wins) when omitted."
    )


class ImageSearchForm(Page):
    """The non-file fields of `POST /api/v1/search/image` (multipart)."""

    filters: SearchFilters | None = None


class ProductResult(BaseModel):
    product_id: int
    score: float
    product_name: str
    description: str | None = None
    price: float | None = None
    rrp_price: float | None = None
    currency: str | None = None
    image_url: str | None = None
    product_url: str | None = None
    merchant_name: str | None = None
    brand_name: str | None = None
    category_name: str | None = None
    colour: str | None = None
    in_stock: bool | None = None
    stock_quantity: int | None = None


class QueryInterpretation(BaseModel):
    """What the search box understood beyond the words (filters lifted from the query, spelling fixes)."""

    corrected_query: str | None = None
    applied_filters: dict[str, object] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    query: str
    results: list[ProductResult]
    total: int
    limit: int
    offset: int
    took_ms: float
    cached: bool
    mode: SearchMode = "vector"
    interpretation: QueryInterpretation | None = None
    message: str | None = None
