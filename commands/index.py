"""`vitrine index build`: encode the active catalog and save a new index version.

    vitrine index build [--batch-size 256] [--exact-threshold N] [--no-images] [--if-stale] [--keep 3]

The work is runners/index_build.py's (how products are encoded, with their photos where the model has an
image tower) and runners/vector_index.py's (the index, its versions and the CURRENT pointer); this module is
the command: its options, progress bars and report. The new version is saved under FAISS_INDEX_PATH and
CURRENT moves to it; a running index service swaps to it within INDEX_RELOAD_INTERVAL_S. `--if-stale` skips
all of that when CURRENT was built from the same active products with the same model. Old versions beyond
--keep are deleted. A database that is not at the head revision is refused, as `catalog import` refuses it.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from commands.db import DatabaseUrlOption, database_errors, database_settings

app = typer.Typer(no_args_is_help=True)


@app.command()
def build(
    batch_size: Annotated[int, typer.Option(min=1, help="Products per database page and encoder batch.")] = 256,
    exact_threshold: Annotated[
        int | None, typer.Option(min=1, help="Exact search below this many products (default: settings).")
    ] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="Text vectors only, even for CLIP.")] = False,
    if_stale: Annotated[
        bool, typer.Option("--if-stale", help="Do nothing when CURRENT matches the catalog and model.")
    ] = False,
    keep: Annotated[int, typer.Option(min=1, help="Index versions to keep on disk (CURRENT always).")] = 3,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Encode the active catalog and save a new index version (CURRENT moves to it)."""
    from runners.index_build import build_index, encode_catalog
    from runners.vector_index import prune_versions

    settings = database_settings(database_url)
    root = settings.resolved_index_path
    console = Console()
    scratch = root / f".build-{int(time.time() * 1000)}"
    try:
        with database_errors(settings), progress_bar("encoding") as progress:
            encoded = asyncio.run(
                encode_catalog(
                    settings,
                    root,
                    scratch,
                    batch_size=batch_size,
                    use_images=not no_images,
                    if_stale=if_stale,
                    progress=progress,
                )
            )
        if encoded is None:
            console.print(f"index under {escape(str(root))} is up to date; nothing to do", highlight=False)
            return
        if not encoded.ids:
            console.print("[yellow]warning:[/yellow] no active products; saving an empty index")
        started = time.perf_counter()
        with progress_bar("indexing") as progress:
            index = build_index(
                encoded, exact_threshold=exact_threshold or settings.index_exact_threshold, progress=progress
            )
        folder = index.save(root)
        indexing_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pruned = prune_versions(root, keep=keep)
    images = encoded.images
    console.print(
        f"index version [bold]{escape(index.version)}[/bold]: {index.size} products, {index.kind}, "
        f"dim {index.dim}, model {escape(index.model_tag)}\n"
        f"  encoding {encoded.seconds:.1f}s, indexing and saving {indexing_seconds:.1f}s, "
        f"total {encoded.seconds + indexing_seconds:.1f}s\n"
        f"  {images.summary()}\n"
        f"  saved to {escape(str(folder))}; CURRENT -> {escape(index.version)}"
        + (f"; removed {len(pruned)} old version(s)" if pruned else ""),
        highlight=False,
    )
    if images.examples:
        console.print("  unreadable images, e.g.: " + escape("; ".join(images.examples)), highlight=False)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress(done, total) callback drawing a bar of products, shown from its first call on."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("products"),
        TimeElapsedColumn(),
    )
    task: TaskID | None = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        bar.stop()
