"""`vitrine catalog`: load products into the database.

    vitrine catalog import PATH [--batch-size 1000]     an Awin product feed (CSV, or .csv.gz)
    vitrine catalog demo [--count 5000] [--seed 7]      the deterministic synthetic catalog

Both go through the same upsert (adapters/db/products.py): new products are inserted, changed ones
updated, identical ones left alone, so either can be re-run safely. Rejected feed rows are listed (line and
reason) but do not fail the command: exit code 0 means the good rows are in. Exit code 1 means nothing was
imported (no schema, database unreachable, not a feed).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from commands.db import DatabaseUrlOption, database_errors, database_settings
from domain.catalog_feed import FeedFormatError, ProductRecord, RowRejection, read_feed
from domain.settings import Settings

if TYPE_CHECKING:
    from adapters.db.products import ImportReport

app = typer.Typer(no_args_is_help=True)

SHOWN_REJECTIONS = 20
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Rows per transaction.")]


@app.command("import")
def import_feed(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The feed file.")],
    batch_size: BatchSizeOption = 1000,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Import an Awin product feed, upserting by aw_product_id."""
    settings = database_settings(database_url)
    try:
        with database_errors(settings):
            report = asyncio.run(_write(settings, read_feed(path), _count_lines(path) - 1, batch_size))
    except FeedFormatError as error:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from error
    _print_report(report, path.name)


@app.command()
def demo(
    count: Annotated[int, typer.Option(min=0, help="Number of products.")] = 5000,
    seed: Annotated[int, typer.Option(help="Same count and seed, same catalog.")] = 7,
    batch_size: BatchSizeOption = 1000,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Write the deterministic synthetic demo catalog (ids from 900,000,000)."""
    from domain.demo_catalog import demo_products

    settings = database_settings(database_url)
    with database_errors(settings):
        report = asyncio.run(_write(settings, demo_products(count, seed=seed), count, batch_size))
    _print_report(report, f"demo catalog ({count} products, seed {seed})")


async def _write(
    settings: Settings, rows: Iterable[ProductRecord | RowRejection], expected: int, batch_size: int
) -> ImportReport:
    from adapters.db import migrate
    from adapters.db import products as repository
    from adapters.db.engine import create_engine

    engine = create_engine(settings)
    try:
        await migrate.require_schema(engine)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
        )
        with progress:
            task = progress.add_task("importing", total=max(expected, 0))
            # The rows are read synchronously between batches: nothing else runs on this loop.
            report = await repository.import_feed(
                engine,
                rows,
                batch_size=batch_size,
                on_progress=lambda report: progress.update(task, completed=report.processed),
            )
            # The estimate counts physical lines; quoted multi-line fields make it a little high.
            progress.update(task, total=report.processed, completed=report.processed)
        return report
    finally:
        await engine.dispose()


def _count_lines(path: Path) -> int:
    """Physical lines, for the progress bar's total: a fast byte scan, no CSV parsing."""
    opener = gzip.open if path.suffix == ".gz" else open
    lines, last = 0, b"\n"
    with opener(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _print_report(report: ImportReport, source: str) -> None:
    console = Console()
    counts = Table(title=f"Catalog import: {escape(source)}", title_justify="left")
    for column in ("inserted", "updated", "unchanged", "rejected"):
        counts.add_column(column, justify="right")
    counts.add_row(
        *(str(n) for n in (report.inserted, report.updated, report.unchanged, report.rejected_count))
    )
    console.print(counts)

    if report.rejected:
        shown = report.rejected[:SHOWN_REJECTIONS]
        rejected = Table(
            title=f"Rejected rows (first {len(shown)} of {report.rejected_count})", title_justify="left"
        )
        rejected.add_column("line", justify="right")
        rejected.add_column("reason", overflow="fold")
        for rejection in shown:
            rejected.add_row(str(rejection.line), escape(rejection.reason))
        console.print(rejected)
    # One plain line, for logs and scripts that grep.
    console.print(
        f"{report.inserted} inserted, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.rejected_count} rejected",
        markup=False,
        highlight=False,
    )
