"""A database not at this code's head revision, on real PostgreSQL and SQLite: the commands that read or write
the catalog refuse it, and the service's readiness (adapters/db/migrate.py `schema_readiness`) says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from adapters.db import migrate
from cli import app
from tests.integration.test_catalog_import import on_db  # one engine for one piece of work, disposed after

pytestmark = pytest.mark.integration

T = TypeVar("T")
HEAD = "0003"


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("empty_postgres_url" if request.param == "postgresql" else "sqlite_url")
    return url


def refusal(tmp_path: Path, url: str, *command: str) -> str:
    """Run a command expected to refuse the database: exit code 1 and one readable line, no traceback."""
    env = {"COLUMNS": "300", "FAISS_INDEX_PATH": str(tmp_path / "index"), "BENTOML_HOME": str(tmp_path / "bentoml")}
    result = CliRunner().invoke(app, [*command, "--database-url", url], env=env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def test_head_is_this_codes_newest_migration() -> None:
    assert migrate.head_revision() == HEAD
    assert migrate.known_revisions() == {"0001", "0002", "0003"}


def test_at_head_the_service_is_ready(database_url: str) -> None:
    ready = on_db(database_url, migrate.schema_readiness)
    assert ready == (True, f"the database is at revision {HEAD}, this code's head")


def test_behind_head_index_build_catalog_import_and_readiness_refuse(
    database_url: str, tmp_path: Path, lululemon_feed: Path
) -> None:
    migrate.downgrade(database_url, "0001")
    ready, why = on_db(database_url, migrate.schema_readiness)
    assert (ready, why) == (False, "the database is at revision 0001, this code needs 0003; run `vitrine db upgrade`")
    for command in (["index", "build"], ["catalog", "import", str(lululemon_feed)]):
        output = refusal(tmp_path, database_url, *command)
        assert "is at revision 0001, this code needs 0003; run `vitrine db upgrade`" in output, command
    assert not (tmp_path / "index").exists()  # refused before any work


def test_without_a_schema_index_build_and_readiness_refuse(database_url: str, tmp_path: Path) -> None:
    migrate.downgrade(database_url, "base")
    assert on_db(database_url, migrate.schema_readiness) == (
        False,
        "the database has no schema; run `vitrine db upgrade`",
    )
    assert "has no schema; run `vitrine db upgrade`" in refusal(tmp_path, database_url, "index", "build")


def test_ahead_of_head_the_service_stays_ready_and_the_commands_refuse(database_url: str, tmp_path: Path) -> None:
    # A newer release migrated the database (a rolling update): the old pods keep serving until replaced, but
    # the old release's commands do not write into a schema they do not know.
    async def newer(engine: AsyncEngine) -> None:
        async with engine.begin() as connection:
            await connection.execute(sa.text("UPDATE alembic_version SET version_num = '0004'"))

    on_db(database_url, newer)
    assert on_db(database_url, migrate.schema_readiness) == (
        True,
        "the database is at revision 0004, newer than this code's head 0003",
    )
    assert "is at revision 0004, newer than this code's head 0003" in refusal(tmp_path, database_url, "index", "build")
