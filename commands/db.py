"""`vitrine db`: the schema, through Alembic.

    vitrine db upgrade [--revision head]    migrate the configured database (DATABASE_URL, or the SQLite file)
    vitrine db current                      print the revision the database is at, and the code's head

Migrations stay an explicit step, never a side effect on a production schema: `catalog import` and
`index build` refuse a database that is not at head and say so, and the service is not ready (/ready 503)
while the database has no schema or is behind head (adapters/db/migrate.py; a database ahead of head, migrated
by a newer release during a rolling update, keeps the old release ready). Heavy imports happen inside the
commands, so `vitrine model ...` does not pay for SQLAlchemy and Alembic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from domain.errors import DependencyDown
from domain.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True)

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Database to use instead of DATABASE_URL (or the embedded SQLite)."),
]


def database_settings(database_url: str | None) -> Settings:
    # Through Settings, so postgresql:// and sqlite:/// get their async drivers exactly as DATABASE_URL does.
    return Settings(database_url=database_url) if database_url else get_settings()


def shown(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """Turn "no schema" and "cannot connect" into one readable line and exit code 1, not a traceback."""
    from sqlalchemy.exc import OperationalError

    errors = Console(stderr=True)
    try:
        yield
    except DependencyDown as error:
        errors.print(f"[red]error:[/red] {escape(error.message)}", highlight=False)
        raise typer.Exit(1) from error
    except (OperationalError, OSError) as error:
        errors.print(
            f"[red]error:[/red] cannot use the database at {escape(shown(settings))}: {escape(str(error))}",
            highlight=False,
        )
        raise typer.Exit(1) from error


@app.command()
def upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    database_url: DatabaseUrlOption = None,
) -> None:
    """Apply the Alembic migrations up to REVISION (default: the newest)."""
    from adapters.db import migrate

    settings = database_settings(database_url)
    with database_errors(settings):
        migrate.upgrade(settings.resolved_database_url, revision)
        now = asyncio.run(_current(settings))
    Console().print(f"{shown(settings)} is at revision {now}", markup=False, highlight=False)


@app.command()
def current(database_url: DatabaseUrlOption = None) -> None:
    """Print the database's revision and the code's head revision."""
    from adapters.db import migrate

    settings = database_settings(database_url)
    with database_errors(settings):
        revision = asyncio.run(_current(settings))
    head = migrate.head_revision()
    note = "up to date" if revision == head else "run `vitrine db upgrade`"
    Console().print(
        f"{shown(settings)}: revision {revision or 'none'}, head {head} ({note})",
        markup=False,
        highlight=False,
    )


async def _current(settings: Settings) -> str | None:
    from adapters.db import migrate
    from adapters.db.engine import create_engine

    engine = create_engine(settings)
    try:
        return await migrate.current_revision(engine)
    finally:
        await engine.dispose()
