"""Feedback: store the event durably, then let it change what the shopper sees next.

Order matters. The event is committed to `user_interactions` first: if that fails the client gets a 503 and
retries, so an acknowledged event is never lost. Only then, before answering, the session embedding is
updated (so the very next request sees it) and the user's cached recommendations are invalidated (one
counter bump, in the same write as the session's). The long-term profile is recomputed later, off the request
path. A session that cannot be updated (cache or index down) does not fail the request: the event is stored,
and the profile will use it.

An event with context 'search' may name the query whose results led to the product (`query`, stored normalised):
the search learns from those in the background (domain/click_model.py), never on this request's path.

The user's erase generation is read before the event is stored (with the session, in one round trip), and the
session and counter writes carry it: if an operator erases the user while the event is in flight, the erase
removes the stored event and those writes are dropped, rather than landing after the erase's cleanup and putting
the event's trace back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from domain.api_models import FeedbackAnswer, FeedbackBatchItem, FeedbackBatchResponse, FeedbackRequest
from domain.errors import DependencyDown, InvalidRequest, NotFound, VitrineError
from domain.interactions import InteractionType, interaction_weight
from domain.ports import (
    InteractionLog,
    ProductDirectory,
    ProductVectors,
    SessionSnapshot,
    SessionStore,
    UserVersions,
)

log = logging.getLogger("vitrine.feedback")


def _ignore(*_: Any) -> None:
    return None


class FeedbackPipeline:
    def __init__(
        self,
        *,
        products: ProductDirectory,
        interactions: InteractionLog,
        vectors: ProductVectors,
        sessions: SessionStore,
        versions: UserVersions,
        refresh_profile: Callable[[int], None],
        on_accepted: Callable[[InteractionType], None] = _ignore,
    ) -> None:
        self.products = products
        self.interactions = interactions
        self.vectors = vectors
        self.sessions = sessions
        self.versions = versions
        self.refresh_profile = refresh_profile
        self.on_accepted = on_accepted

    async def accept(self, event: FeedbackRequest) -> tuple[FeedbackAnswer, bool]:
        """(the answer, whether it replays an earlier event with the same event_id)."""
        if not await self.products.exists(event.product_id):
            raise NotFound(f"product {event.product_id} does not exist", field="product_id")
        occurred_at = event.timestamp or datetime.now(UTC)
        snapshot = await self.sessions.snapshot(event.user_id)  # before the event is stored (see above)
        row, created = await self.interactions.record(event, occurred_at=occurred_at)
        answer = _answer(row)
        if not created:
            return answer, True

        self.on_accepted(event.interaction_type)
        weight = interaction_weight(event.interaction_type, event.rating)
        session_written = weight > 0 and await self._update_session(
            event, weight=weight, at=occurred_at.timestamp(), since=snapshot
        )
        if not session_written:  # a session write moves the version on with it, in one round trip
            await self.versions.bump(event.user_id, erase_generation=snapshot.erase_generation)
        self.refresh_profile(event.user_id)
        return answer, False

    async def _update_session(
        self, event: FeedbackRequest, *, weight: float, at: float, since: SessionSnapshot
    ) -> bool:
        """Whether the session store took the event (and with it the version bump)."""
        try:
            vector = (await self.vectors.vectors([event.product_id])).get(event.product_id)
        except DependencyDown as exc:
            log.warning("session not updated for user %s: %s", event.user_id, exc.message)
            return False
        if vector is None:
            log.info("product %s is not in the index yet; session unchanged", event.product_id)
            return False
        applied = await self.sessions.apply(
            event.user_id, event.interaction_type, vector, weight=weight, at=at, since=since
        )
        if not applied:
            log.warning("session store unavailable; user %s's session not updated (event stored)", event.user_id)
        return applied

    async def accept_batch(self, events: list[dict[str, Any]]) -> FeedbackBatchResponse:
        """Each event on its own: one bad event gets its own error and does not sink the others."""
        items: list[FeedbackBatchItem] = []
        for position, raw in enumerate(events):
            try:
                event = FeedbackRequest.model_validate(raw)
                answer, _ = await self.accept(event)
            except ValidationError as exc:
                items.append(FeedbackBatchItem(index=position, status_code=400, error=validation_error_body(exc)))
            except DependencyDown:
                raise  # the store is down: nothing more can be accepted, the client retries the batch
            except VitrineError as exc:
                items.append(FeedbackBatchItem(index=position, status_code=exc.status_code, error=exc.to_body()))
            else:
                items.append(FeedbackBatchItem(index=position, status_code=200, result=answer))
        accepted = sum(item.status_code == 200 for item in items)
        return FeedbackBatchResponse(accepted=accepted, rejected=len(items) - accepted, results=items)


def _answer(row: dict[str, Any]) -> FeedbackAnswer:
    occurred_at = row["occurred_at"]
    if isinstance(occurred_at, datetime):
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        occurred_at = occurred_at.astimezone(UTC).isoformat()
    return FeedbackAnswer(
        interaction_id=int(row["id"]),
        event_id=row.get("event_id"),
        user_id=int(row["user_id"]),
        product_id=int(row["product_id"]),
        interaction_type=InteractionType(row["interaction_type"]),
        occurred_at=str(occurred_at),
    )


def validation_error_body(exc: ValidationError) -> dict[str, Any]:
    """A pydantic error as the API reports it: the first offending field named, every error listed."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    field = ".".join(str(part) for part in first["loc"]) or None
    return InvalidRequest(f"{field + ': ' if field else ''}{first['msg']}", field=field).to_body() | {"errors": errors}
