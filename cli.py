"""The `vitrine` command: one sub-command group per concern, each in commands/.

    vitrine db upgrade                      apply Alembic migrations (PostgreSQL or the embedded SQLite)
    vitrine catalog import PATH             load an Awin product feed (CSV), upserting by aw_product_id
    vitrine catalog demo --count N          write the deterministic synthetic demo catalog
    vitrine model import minilm             save the bundled all-MiniLM-L6-v2 into the BentoML model store
    vitrine model import open-clip NAME --pretrained TAG_OR_FILE [--config FILE]
    vitrine index build                     encode the active catalog and save a new index version
    vitrine topology split --port 3000      each service its own server on a TCP port, as pods (deploy/)

Every command reads the same settings as the service (domain/settings.py).
"""

from __future__ import annotations

import typer

from commands import catalog, db, index, model, topology

app = typer.Typer(help="vitrine: storefront search and personalization.", no_args_is_help=True)
app.add_typer(db.app, name="db", help="Database schema (Alembic migrations).")
app.add_typer(catalog.app, name="catalog", help="Product catalog: Awin feed import, demo catalog.")
app.add_typer(model.app, name="model", help="Encoder models in the BentoML model store.")
app.add_typer(index.app, name="index", help="The FAISS product index.")
app.add_typer(topology.app, name="topology", help="Serve the services as separate servers (the pods' shape).")

if __name__ == "__main__":
    app()
