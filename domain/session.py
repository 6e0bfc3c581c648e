"""The session embedding: what a shopper is looking at right now, updated on every event before we answer.

It is an exponential moving average in continuous time: each event adds `weight * product_vector`, and every
contribution fades as exp(-elapsed / decay) with the decay of its own interaction type (a view fades in
minutes, a purchase over an hour). To keep that exact with per-type decays, the state keeps one decayed sum
per interaction type; the session vector is their sum, normalised. The decayed weight total says how much
session there still is: below `MIN_STRENGTH` the session counts as absent, and blending leaves it out.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field

import numpy as np

from domain.interactions import InteractionType, session_decay_s

MIN_STRENGTH = 0.02


@dataclass
class Accumulator:
    vector: np.ndarray
    weight: float


@dataclass
class SessionState:
    updated_at: float = 0.0
    parts: dict[InteractionType, Accumulator] = field(default_factory=dict)

    def decayed_to(self, now: float) -> SessionState:
        """The state as it stands at `now` (never earlier than its last update)."""
        elapsed = max(0.0, now - self.updated_at)
        parts = {}
        for kind, acc in self.parts.items():
            factor = math.exp(-elapsed / session_decay_s(kind))
            if acc.weight * factor >= MIN_STRENGTH / 100:
                parts[kind] = Accumulator(acc.vector * factor, acc.weight * factor)
        return SessionState(updated_at=max(now, self.updated_at), parts=parts)

    def apply(self, kind: InteractionType, vector: np.ndarray, *, weight: float, at: float) -> SessionState:
        """A new state with one event folded in. Events older than the last update fade from their own time."""
        if weight <= 0:
            return self
        state = self.decayed_to(at)
        lag = max(0.0, state.updated_at - at)
        factor = weight * math.exp(-lag / session_decay_s(kind))
        contribution = np.asarray(vector, dtype=np.float32) * factor
        acc = state.parts.get(kind)
        state.parts[kind] = (
            Accumulator(contribution, factor)
            if acc is None
            else Accumulator(acc.vector + contribution, acc.weight + factor)
        )
        return state

    def strength(self, now: float) -> float:
        return sum(acc.weight for acc in self.decayed_to(now).parts.values())

    def embedding(self, now: float) -> np.ndarray | None:
        state = self.decayed_to(now)
        if sum(acc.weight for acc in state.parts.values()) < MIN_STRENGTH:
            return None
        total = sum(
            (acc.vector for acc in state.parts.values()), start=np.zeros_like(next(iter(state.parts.values())).vector)
        )
        norm = float(np.linalg.norm(total))
        return None if norm == 0 else (total / norm).astype(np.float32)

    # --- storage form ---------------------------------------------------------------------------------------
    def dumps(self) -> bytes:
        return json.dumps(
            {
                "updated_at": self.updated_at,
                "parts": {
                    kind.value: {
                        "w": acc.weight,
                        "v": base64.b64encode(np.asarray(acc.vector, dtype=np.float32).tobytes()).decode(),
                    }
                    for kind, acc in self.parts.items()
                },
            }
        ).encode()

    @classmethod
    def loads(cls, raw: bytes | str | None) -> SessionState:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(
            updated_at=float(data["updated_at"]),
            parts={
                InteractionType(kind): Accumulator(
                    np.frombuffer(base64.b64decode(part["v"]), dtype=np.float32).copy(), float(part["w"])
                )
                for kind, part in data["parts"].items()
            },
        )
