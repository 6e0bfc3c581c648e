"""Alembic, driven from code: no alembic.ini and no particular working directory needed.

`upgrade` blocks (Alembic is synchronous; migrations/env.py runs the async driver on a loop of its own, on a
worker thread when the caller is already inside one). `require_schema` is the cheap check that commands make
before touching tables, and `schema_readiness` the service's (/ready), so a forgotten `vitrine db upgrade`
reads as exactly that.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
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


@functools.cache
def head_revision() -> str | None:
    """This code's newest revision (read from migrations/ once per process: it cannot change under it)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@functools.cache
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


@dataclass(frozen=True)
class SchemaState:
    """Where the database's schema stands against this code's migrations."""

    current: str | None  # None: no schema at all
    head: str | None

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def ahead(self) -> bool:
        """At a revision this code has no migration for: a newer release has migrated the database."""
        return self.current is not None and self.current not in known_revisions()

    def describe(self, where: str) -> str:
        if self.at_head:
            return f"{where} is at revision {self.current}, this code's head"
        if self.current is None:
            return f"{where} has no schema; run `vitrine db upgrade`"
        if self.ahead:
            return f"{where} is at revision {self.current}, newer than this code's head {self.head}"
        return f"{where} is at revision {self.current}, this code needs {self.head}; run `vitrine db upgrade`"


async def schema_state(engine: AsyncEngine) -> SchemaState:
    return SchemaState(current=await current_revision(engine), head=head_revision())


async def require_schema(engine: AsyncEngine) -> None:
    """Raise DependencyDown unless the database is migrated to the head revision of this code.

    For the commands that write (catalog import) or read everything (index build): they run with the release
    that migrated the database.
    """
    state = await schema_state(engine)
    if not state.at_head:
        raise DependencyDown("database", state.describe(engine.url.render_as_string(hide_password=True)))


async def schema_readiness(engine: AsyncEngine) -> tuple[bool, str]:
    """For the service's /ready: (whether this code may serve from the database, and why in words).

    Ready at this code's head revision. Not ready with no schema or behind head: the code would query tables
    or columns that are not there yet. Ready, and saying so, when the database is *ahead* (a revision this code
    does not know): in a rolling update the new release migrates first, and the old pods must keep serving
    until they are replaced (a migration keeps the previous release working; that is how they are written).
    """
    state = await schema_state(engine)
    return state.at_head or state.ahead, state.describe("the database")
