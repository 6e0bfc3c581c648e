"""adapters/db/failures.py: database failures become DependencyDown("database"); anything else passes through."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from adapters.db.failures import database_call
from domain.errors import DependencyDown


async def test_a_driver_failure_is_a_retryable_503_with_its_first_line() -> None:
    async def failing() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused\nDETAIL: more"))

    with pytest.raises(DependencyDown) as raised, database_call():
        await failing()
    assert raised.value.status_code == 503 and raised.value.dependency == "database"
    assert raised.value.to_body() == {
        "error": "DependencyDown",
        "detail": "database unavailable: (builtins.ConnectionRefusedError) connection refused",
        "dependency": "database",
        "retryable": True,
    }
    assert isinstance(raised.value.__cause__, OperationalError)


def test_a_failure_without_a_message_is_named_by_its_type() -> None:
    with pytest.raises(DependencyDown, match=r"^database unavailable: ConnectionResetError$"), database_call():
        raise ConnectionResetError()


def test_other_errors_are_not_the_databases() -> None:
    with pytest.raises(KeyError), database_call():
        raise KeyError("a bug, not an outage")
