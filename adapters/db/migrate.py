"""Alembic, driven from code: no alembic.ini and no particular working directory needed.

`upgrade` blocks (Alembic is synchronous; migrations/env.py runs the async driver on a loop of its own, on a
worker thread when the caller is already inside one). `require_schema` is the cheap check that commands and
the service make before touching tables, so a forgotten `vitrine db upgrade` reads as exactly that.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import DependencyDown

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        config.attributes["sqlalchemy.url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def require_schema(engine: AsyncEngine) -> None:
    """Raise DependencyDown unless the database is migrated to the head revision of this code."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "has no schema" if current is None else f"is at revision {current}, this code needs {head}"
        raise DependencyDown("database", f"{where} {state}; run `vitrine db upgrade`")
