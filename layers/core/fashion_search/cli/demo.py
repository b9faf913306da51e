"""``fashion-search demo`` (the whole local product, offline) and ``fashion-search demo-catalog``
(just the generated catalog, e.g. to train on)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fashion_search.cli._report import finish, ingest_problems, load_problems, say
from fashion_search.cli._signals import stop_on_signals
from fashion_search.demo.catalog import DEFAULT_SEED
from fashion_search.errors import InvalidInput

if TYPE_CHECKING:
    from fashion_search.demo.run import DemoPaths
    from fashion_search.ingest.pipeline import Ingestor
    from fashion_search.settings import Settings


def demo_command(
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps everything.")] = Path(
        "data/demo"
    ),
    products: Annotated[int, typer.Option(min=1, max=20_000, help="Catalog size.")] = 1500,
    seed: Annotated[int, typer.Option(help="Catalog seed.")] = DEFAULT_SEED,
    catalog: Annotated[
        Path | None,
        typer.Option(help="Use this styles.csv (images/ beside it) instead of generating one."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model bundle (default: settings, i.e. models/demo).")
    ] = None,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Start the Streamlit app.")] = True,
    api_port: Annotated[int, typer.Option(min=1, max=65535, help="Preferred API port.")] = 8000,
    ui_port: Annotated[int, typer.Option(min=1, max=65535, help="Preferred UI port.")] = 8501,
    prepare_only: Annotated[
        bool,
        typer.Option("--prepare-only", help="Generate, load and ingest, then exit (no servers)."),
    ] = False,
) -> None:
    """Generate a catalog, ingest it with the demo model, start the API and the UI.

    Ctrl-C stops everything. A second run reuses the catalog, the images and the index.
    """
    from tqdm import tqdm

    from fashion_search.demo import run as demo
    from fashion_search.runtime import build_ingestor
    from fashion_search.settings import Settings

    started = time.monotonic()
    paths = demo.DemoPaths(data_dir, own_catalog=catalog)
    settings = demo.demo_settings(Settings(), data_dir=data_dir, bundle=model)
    bundle = demo.check_bundle(settings)
    if catalog is not None:
        if not catalog.is_file() or not paths.source_images.is_dir():
            raise InvalidInput(
                f"--catalog needs a styles.csv with an images/ folder beside it: {catalog}",
                field="catalog",
            )
        typer.echo(f"catalog: {catalog} (yours)")
    elif demo.ensure_catalog(paths, products=products, seed=seed):
        typer.echo(f"generated a catalog of {products} products in {paths.catalog_dir}")
    else:
        typer.echo(f"catalog: {paths.styles_csv} (reused)")
    ingestor = build_ingestor(settings)
    typer.echo(f"model: {ingestor.embedder.model_id} ({bundle})")
    # One bar after the other, each closed before the next starts: two live bars share one
    # line wherever the output is not a terminal that moves the cursor (a log, CI, a pipe).
    with tqdm(total=None if catalog else products, desc="load catalog", unit="img") as bar:
        loaded = demo.load_catalog(ingestor, paths, on_progress=bar.update)
    with tqdm(desc="index images", unit="img") as bar:
        indexed = demo.catch_up(ingestor, paths, on_progress=bar.update)
    typer.echo(
        f"loaded {loaded.loaded} new, {loaded.unchanged} unchanged; "
        f"ingest: {json.dumps(indexed.counts)}; "
        f"index holds {ingestor.stores.vectors.count(namespace=ingestor.stores.namespace)} images"
    )
    problems = load_problems(loaded) + ingest_problems(indexed.problems)
    if prepare_only:
        finish(problems)
        return
    say(problems)  # the demo still starts: what is indexed is searchable
    _serve(ingestor, settings, paths, ui=ui, api_port=api_port, ui_port=ui_port, started=started)


def _serve(
    ingestor: Ingestor,
    settings: Settings,
    paths: DemoPaths,
    *,
    ui: bool,
    api_port: int,
    ui_port: int,
    started: float,
) -> None:
    """Start the API (and the UI), watch the drop folder, and run until Ctrl-C or a service
    exits."""
    from fashion_search.demo import run as demo
    from fashion_search.ingest.outcome import IngestOutcome, summarise

    ui_app = Path("streamlit_app/app.py").resolve() if ui else None
    if ui_app is not None and not ui_app.is_file():
        typer.echo(
            f"note: {ui_app} not found (run from the repository root); starting the API only"
        )
        ui_app = None
    typer.echo("note: API key auth is DISABLED for this local demo (loopback only); deployments "
               "keep it on.")  # fmt: skip

    def on_batch(outcomes: list[IngestOutcome]) -> None:
        typer.echo(f"drop folder: {json.dumps(summarise(outcomes))}")

    stop_on_signals()  # Ctrl-C, kill and a closed terminal: the same clean stop
    running = demo.start(
        ingestor, settings, paths,
        base_env=os.environ, ui_app=ui_app, api_port=api_port, ui_port=ui_port, on_batch=on_batch,
    )  # fmt: skip
    api = running.services[0]
    typer.echo(f"\nready in {time.monotonic() - started:.1f}s")
    typer.echo(f"  API:         {api.url}  (docs: {api.url}/docs)")
    if len(running.services) > 1:
        typer.echo(f"  UI:          {running.services[1].url}")
    typer.echo(f"  drop folder: {paths.drop_folder.resolve()}  (new images become searchable)")
    typer.echo(f"  logs:        {paths.log_dir.resolve()}")
    typer.echo("Ctrl-C to stop.")
    try:
        while all(s.alive() for s in running.services):
            time.sleep(0.5)
        dead = [s for s in running.services if not s.alive()]
        typer.echo(f"{', '.join(s.name for s in dead)} exited; see {paths.log_dir}", err=True)
    except KeyboardInterrupt:
        typer.echo("\nstopping ...")
    finally:
        running.stop()
    typer.echo("stopped.")


def demo_catalog_command(
    out: Annotated[Path, typer.Option(help="Folder for styles.csv and images/.")],
    products: Annotated[int, typer.Option(min=1, max=100_000, help="Catalog size.")] = 1500,
    seed: Annotated[int, typer.Option(help="Catalog seed.")] = DEFAULT_SEED,
    image_size: Annotated[int, typer.Option(min=32, max=512, help="Image side in pixels.")] = 96,
    brands: Annotated[
        bool, typer.Option(help="Put a brand word in front of each display name.")
    ] = False,
) -> None:
    """Only write the demo catalog (Kaggle styles.csv format) to OUT."""
    from fashion_search.demo.catalog import generate_catalog

    csv_path = generate_catalog(
        out, products=products, seed=seed, image_size=image_size, brands=brands
    )
    typer.echo(f"wrote {csv_path} and {products} images in {out / 'images'}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
    app.command("demo-catalog")(demo_catalog_command)
