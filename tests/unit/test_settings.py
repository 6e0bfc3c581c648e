"""Settings that depend on each other (domain/settings.py): API workers and where their shared state lives."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_one_api_worker_unless_asked_and_more_only_with_redis() -> None:
    assert settings(REDIS_URL=None).api_workers == 1
    assert settings(REDIS_URL="redis://cache:6379/0").api_workers == 1
    assert settings(REDIS_URL="redis://cache:6379/0", API_WORKERS=4).api_workers == 4


def test_several_workers_without_redis_are_refused_at_start_naming_both_settings() -> None:
    with pytest.raises(ValidationError, match="API_WORKERS > 1 needs REDIS_URL"):
        settings(REDIS_URL=None, API_WORKERS=2)
