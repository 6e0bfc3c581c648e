"""The one place database failures become `DependencyDown` (503, retryable, `"dependency": "database"`).

    with database_call():
        rows = await connection.execute(...)

What counts as the database failing: SQLAlchemy's OperationalError and DBAPIError (the driver's errors,
wrapped), and the OSError / ConnectionError a driver raises before SQLAlchemy wraps anything (refused
connection, reset socket, timeout). The client is told to retry; the first line of the driver's message goes
into `detail` (the rest can be a multi-line SQL dump).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError

from domain.errors import DependencyDown

DB_FAILURES: tuple[type[Exception], ...] = (OperationalError, DBAPIError, OSError, ConnectionError)


@contextmanager
def database_call() -> Iterator[None]:
    """Run the block; a database failure inside it is raised as DependencyDown("database")."""
    try:
        yield
    except DB_FAILURES as exc:
        first_line = next(iter(str(exc).splitlines()), "") or type(exc).__name__
        raise DependencyDown("database", first_line) from exc
