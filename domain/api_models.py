"""The public wire format of the JSON API: what clients send and what they get back.

Requests refuse unknown fields, so a typo (`"limt": 5`) is a 400 that names the field rather than a silently
ignored parameter. The seed's examples are valid requests as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from domain.blending import RecommendContext
from domain.filters import SearchFilters
from domain.interactions import InteractionContext, InteractionType

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
    # The index version this page came from: a page never mixes versions, and during an index rollout a client
    # paging on can tell that page 2 came from a newer version than page 1.
    index_version: str | None = None


# --- personalization ----------------------------------------------------------------------------------------
MAX_CLOCK_SKEW = timedelta(minutes=5)
UserId = Annotated[int, Field(gt=0, le=2**63 - 1, description="The shop's numeric user id")]
ProductId = Annotated[int, Field(gt=0, le=2**63 - 1, description="The product id (the feed's aw_product_id)")]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    product_id: ProductId
    interaction_type: InteractionType
    context: InteractionContext = InteractionContext.OTHER
    position: int | None = Field(
        None, ge=0, le=10_000, description="Where the product was shown: its 0-based rank in the list (offset + index)"
    )
    query: QueryText | None = Field(
        None,
        description="With context 'search': the query whose results led to the product, as it was searched. "
        "Clicks, carts and purchases after a query raise the products shoppers chose for it (position bias "
        "corrected); refused with any other context.",
    )
    event_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)] | None = Field(
        None, description="A client-made id: a retry with the same event_id is stored and counted once."
    )
    session_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    rating: int | None = Field(None, ge=1, le=5, description="1..5, required for rating events, refused on others")
    timestamp: datetime | None = Field(None, description="When it happened (ISO 8601; UTC when no offset); default now")

    @field_validator("query")
    @classmethod
    def _query_with_search(cls, query: str | None, info: ValidationInfo) -> str | None:
        if query is not None and info.data.get("context") is not InteractionContext.SEARCH:
            raise ValueError("query is only accepted when context is 'search'")
        return query

    @model_validator(mode="after")
    def _rating_matches_type(self) -> FeedbackRequest:
        if self.interaction_type is InteractionType.RATING and self.rating is None:
            raise ValueError("rating is required when interaction_type is 'rating'")
        if self.interaction_type is not InteractionType.RATING and self.rating is not None:
            raise ValueError("rating is only accepted when interaction_type is 'rating'")
        if self.timestamp is not None:
            if self.timestamp.tzinfo is None:
                self.timestamp = self.timestamp.replace(tzinfo=UTC)
            if self.timestamp > datetime.now(UTC) + MAX_CLOCK_SKEW:
                raise ValueError("timestamp is in the future")
        return self


class FeedbackAnswer(BaseModel):
    """The answer to an accepted event: built from the stored row, so a retry gets the very same answer."""

    status: Literal["accepted"] = "accepted"
    interaction_id: int
    event_id: str | None = None  # always set from the stored row; the default documents it as nullable
    user_id: int
    product_id: int
    interaction_type: InteractionType
    occurred_at: str


class FeedbackBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Items are validated one by one by the pipeline, so one bad event does not sink the others.
    events: list[dict[str, Any]] = Field(min_length=1, max_length=500)


class FeedbackBatchItem(BaseModel):
    index: int
    status_code: int
    result: FeedbackAnswer | None = None
    error: dict[str, Any] | None = None


class FeedbackBatchResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[FeedbackBatchItem]


class RecommendRequest(Page):
    user_id: UserId
    context: RecommendContext = RecommendContext.FEED
    query: QueryText | None = None
    product_id: ProductId | None = None
    category: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    filters: SearchFilters | None = None

    @model_validator(mode="after")
    def _context_needs(self) -> RecommendRequest:
        needed = {
            RecommendContext.SEARCH: "query",
            RecommendContext.SIMILAR: "product_id",
            RecommendContext.CATEGORY: "category",
        }.get(self.context)
        if needed is not None and getattr(self, needed) is None:
            raise ValueError(f"{needed} is required when context is '{self.context.value}'")
        return self


class RecommendResponse(BaseModel):
    user_id: int
    context: RecommendContext
    strategy: Literal["personalized", "cold_start"]
    blend_weights: dict[str, float]
    components: list[str]
    results: list[ProductResult]
    total: int
    limit: int
    offset: int
    took_ms: float
    cached: bool
