"""``fashion-search ingest | watch | load | reconcile``: parse, wire, report; the core works."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from fashion_search.cli._checks import require_home
from fashion_search.cli._report import emit, finish, ingest_problems, load_problems, say
from fashion_search.cli._signals import stop_on_signals
from fashion_search.ingest.outcome import IngestOutcome
from fashion_search.runtime import build_ingestor
from fashion_search.settings import Home, Settings


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def ingest_cmd(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, help="A folder of images (or the images folder itself)."
        ),
    ],
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Events per batch.")] = 64,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the summary here.")
    ] = None,
) -> None:
    """Index an existing folder once: in place inside the data folder, else copied into it."""
    from fashion_search.ingest.triggers.oneshot import (
        copy_into_store,
        files_under,
        ingest_folder,
        ingest_keys,
    )

    settings = Settings()
    ingestor = build_ingestor(settings)
    stores = ingestor.stores
    root = settings.embedded.images_dir
    summary: dict[str, Any] = {}
    if settings.home is Home.EMBEDDED and _inside(path, root):
        total = sum(1 for _ in files_under(path))
        with tqdm(total=total, desc="ingest", unit="img") as bar:
            done = ingest_folder(
                ingestor, root, under=path, batch_size=batch_size, on_progress=bar.update
            )
        summary.update(done.counts)
        emit(summary, json_path)
        finish(ingest_problems(done.problems))
        return
    total = sum(1 for _ in files_under(path))
    with tqdm(total=total, desc="copy", unit="file") as bar:
        copied = copy_into_store(
            stores.blobs, path, prefix=stores.ingest_prefix, on_progress=bar.update
        )
    summary.update(copied=len(copied.copied), unchanged=len(copied.unchanged))
    problems: list[IngestOutcome] = []
    if settings.home is Home.AWS:
        summary["note"] = "uploaded under the ingest prefix; the ingest function indexes them"
    else:
        keys = copied.copied + copied.unchanged
        with tqdm(total=len(keys), desc="ingest", unit="img") as bar:
            done = ingest_keys(ingestor, root, keys, batch_size=batch_size, on_progress=bar.update)
        summary.update(done.counts)
        problems = done.problems
    emit(summary, json_path)
    finish(ingest_problems(problems))


def watch_cmd(
    settle: Annotated[
        float, typer.Option(min=0.0, help="Seconds a file must stay unchanged.")
    ] = 1.0,
    catch_up: Annotated[
        bool, typer.Option(help="First ingest what changed while not watching.")
    ] = True,
) -> None:
    """Watch the embedded images folder and index changes as they happen (Ctrl-C stops).

    Exits 1 at the end when images are left FAILED or to retry (the catch-up's included)."""
    from fashion_search.ingest.events import EventKind
    from fashion_search.ingest.outcome import LatestOutcomes, OutcomeStatus, summarise
    from fashion_search.ingest.triggers.oneshot import catch_up as catch_up_folder
    from fashion_search.ingest.triggers.watcher import FolderWatcher

    settings = Settings()
    if settings.home is Home.AWS:
        typer.echo(
            "error: watch is for the embedded home; in AWS, S3 notifications trigger ingest",
            err=True,
        )
        raise typer.Exit(2)
    ingestor = build_ingestor(settings)
    root = settings.embedded.images_dir
    watcher = FolderWatcher(ingestor, root, settle_s=settle)
    latest = LatestOutcomes()
    if catch_up:
        done = catch_up_folder(ingestor, root)
        typer.echo(f"catch-up: {json.dumps(done.counts)}")
        say(ingest_problems(done.problems))
        latest.add(done.problems)
        for o in done.problems:  # the watcher tries these again, as it does its own retries
            if o.status is OutcomeStatus.RETRY:
                retry = watcher.changed if o.event.kind is EventKind.CREATED else watcher.removed
                retry(root / o.event.key)

    def on_batch(outcomes: list[IngestOutcome]) -> None:
        latest.add(outcomes)
        typer.echo(json.dumps(summarise(outcomes)))

    stop = threading.Event()
    stop_on_signals()  # kill (SIGTERM) also ends with the report below
    try:
        typer.echo(f"watching {root} (Ctrl-C to stop)")
        watcher.run(stop, on_batch=on_batch)
    except KeyboardInterrupt:
        stop.set()
    finish(ingest_problems(latest.problems()))


def load_cmd(
    styles_csv: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="The catalog: a Kaggle-format styles.csv."
        ),
    ],
    images_dir: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=False,
            help="Folder of the images, named ID.jpg (or .png, .webp).",
        ),
    ],
    limit: Annotated[int | None, typer.Option(min=1, help="Load only the first N rows.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Concurrent uploads.")] = 8,
    index: Annotated[bool, typer.Option(help="Embedded home: index the loaded images now.")] = True,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the summary here.")
    ] = None,
) -> None:
    """Load a Kaggle Fashion Product Images catalog (styles.csv + images) into the home."""
    from fashion_search.ingest.kaggle.loader import CatalogLoader, LoadTarget

    settings = Settings()
    stores: LoadTarget
    if settings.home is Home.AWS:
        from fashion_search.home import open_upload_stores

        # The cloud embeds (each upload triggers the ingest function): no model, no Pinecone.
        ingestor, stores = None, open_upload_stores(settings)
    else:
        ingestor = build_ingestor(settings)
        stores = ingestor.stores
    total = sum(1 for _ in CatalogLoader(stores).rows(styles_csv, limit=limit))
    with tqdm(total=total, desc="load", unit="row") as bar:
        loader = CatalogLoader(stores, workers=workers, on_progress=bar.update)
        summary = loader.load(styles_csv, images_dir, limit=limit)
    result: dict[str, Any] = {"load": summary.as_dict()}
    problems: list[IngestOutcome] = []
    if settings.home is Home.AWS:
        result["note"] = "uploaded under the ingest prefix; the ingest function indexes them"
    elif index and ingestor is not None:
        from fashion_search.ingest.triggers.oneshot import ingest_keys

        root = settings.embedded.images_dir
        with tqdm(total=len(summary.keys), desc="index", unit="img") as bar:
            done = ingest_keys(ingestor, root, summary.keys, on_progress=bar.update)
        result["index"] = done.counts
        problems = done.problems
    emit(result, json_path)
    finish(load_problems(summary) + ingest_problems(problems))


def reconcile_cmd(
    fix: Annotated[bool, typer.Option("--fix/--dry-run", help="Repair, or only report.")] = True,
    reembed_stale: Annotated[
        bool, typer.Option("--reembed-stale", help="Re-embed items made by another model.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the report here.")
    ] = None,
) -> None:
    """Compare catalog, vector index and images, and repair what disagrees.

    Deletes orphan vectors, re-drives PENDING items, restores missing vectors and removes items
    whose image is gone."""
    from fashion_search.ingest.reconcile import reconcile

    settings = Settings()
    require_home(settings)
    with tqdm(desc="reconcile", unit="item") as bar:
        report = reconcile(
            build_ingestor(settings), fix=fix, reembed_stale=reembed_stale, on_progress=bar.update
        )
    emit(report.as_dict(), json_path)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.command("watch")(watch_cmd)
    app.command("load")(load_cmd)
    app.command("reconcile")(reconcile_cmd)
