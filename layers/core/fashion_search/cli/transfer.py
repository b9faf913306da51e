"""``fashion-search reindex | migrate``: rebuild an index from the catalog, move a catalog between
homes. Neither loads the model: the catalog's stored embeddings are the vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from fashion_search.cli._checks import require_home
from fashion_search.cli._report import emit
from fashion_search.errors import ConfigError
from fashion_search.settings import ENV_PREFIX, EmbeddedSettings, Home, Settings
from fashion_search.types import ItemStatus


def _bundle_identity(settings: Settings, *, flags: str) -> tuple[str, int]:
    """The configured bundle's model id and dimension, read from its files (its JSON and a hash
    of its files; no ONNX session is opened)."""
    from fashion_search.model.bundle import Bundle

    path = settings.model.bundle
    if not path.is_dir():
        raise ConfigError(
            f"no model bundle at {path} to read the model id and dimension from: pass {flags}, "
            f"or set {ENV_PREFIX}MODEL__BUNDLE",
            field="model.bundle",
        )
    bundle = Bundle.open(path)
    if not bundle.embed_dim:
        raise ConfigError(f"bundle {path} does not state embed_dim: pass --dimension")
    return bundle.model_id, bundle.embed_dim


def _model_identity(
    settings: Settings, *, model_id: str | None, dimension: int | None
) -> tuple[str, int]:
    if model_id and dimension:
        return model_id, dimension
    bundle_id, bundle_dim = _bundle_identity(settings, flags="--model-id and --dimension")
    return model_id or bundle_id, dimension or bundle_dim


ModelIdOpt = Annotated[
    str | None,
    typer.Option(help="Use embeddings of this model (default: the configured bundle's)."),
]
DimensionOpt = Annotated[
    int | None, typer.Option(min=1, help="Vector dimension (default: the configured bundle's).")
]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the summary here.")]


def reindex_cmd(
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Vectors per upsert.")] = 100,
    prune: Annotated[
        bool, typer.Option("--prune", help="Also delete index ids that no catalog item owns.")
    ] = False,
    model_id: ModelIdOpt = None,
    dimension: DimensionOpt = None,
    json_path: JsonOpt = None,
) -> None:
    """Rebuild the vector index from the catalog's stored embeddings (no model, no image reads)."""
    from fashion_search.home import open_stores
    from fashion_search.transfer.reindex import reindex
    from fashion_search.vocabulary import refresh_lexical_stats

    settings = Settings()
    require_home(settings)
    mid, dim = _model_identity(settings, model_id=model_id, dimension=dimension)
    # A damaged embedded index (IndexDamaged on a plain open) is emptied where damaged and rebuilt.
    with open_stores(settings, dimension=dim, rebuilding_index=True) as stores:
        total = stores.catalog.count(ItemStatus.INDEXED)
        with tqdm(total=total, desc="reindex", unit="item") as bar:
            report = reindex(
                stores, model_id=mid, batch_size=batch_size, prune=prune, on_progress=bar.update
            )
        summary = report.as_dict()
        summary["lexical_stats"] = refresh_lexical_stats(stores, settings)
    emit(summary, json_path)


def migrate_cmd(
    to: Annotated[Home, typer.Option("--to", help="The home to copy into.")],
    from_data_dir: Annotated[
        Path | None,
        typer.Option(help="--to aws: the embedded home to copy from (default: the configured)."),
    ] = None,
    to_data_dir: Annotated[
        Path | None,
        typer.Option(help="--to embedded: the folder to copy into (default: the configured)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue an interrupted migration: copy only what is missing."
        ),
    ] = False,
    verify_sample: Annotated[
        int, typer.Option(min=0, help="Vectors compared between the homes at the end.")
    ] = 100,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Items per batch.")] = 100,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Concurrent blob copies.")] = 8,
    dimension: DimensionOpt = None,
    json_path: JsonOpt = None,
) -> None:
    """Copy the whole catalog (images, items, vectors) between the embedded home and AWS.

    The AWS side is read from the FASHION_SEARCH_AWS__* settings."""
    from fashion_search.home import open_stores
    from fashion_search.transfer.migrate import migrate
    from fashion_search.vocabulary import refresh_lexical_stats

    settings = Settings()
    if to is Home.AWS and to_data_dir is not None:
        raise ConfigError("--to-data-dir is for --to embedded; use --from-data-dir")
    if to is Home.EMBEDDED and from_data_dir is not None:
        raise ConfigError("--from-data-dir is for --to aws; use --to-data-dir")
    embedded_dir = from_data_dir or to_data_dir or settings.embedded.data_dir
    embedded = settings.model_copy(
        update={"home": Home.EMBEDDED, "embedded": EmbeddedSettings(data_dir=embedded_dir)}
    )
    aws = settings.model_copy(update={"home": Home.AWS})
    source_settings, target_settings = (embedded, aws) if to is Home.AWS else (aws, embedded)
    if to is Home.AWS and not EmbeddedSettings(data_dir=embedded_dir).catalog_path.is_file():
        raise ConfigError(
            f"{embedded_dir} holds no embedded home (no catalog.sqlite) to migrate from",
            field="--from-data-dir",
        )
    dim = dimension or _bundle_identity(settings, flags="--dimension")[1]
    with (
        open_stores(source_settings, dimension=dim) as source,
        open_stores(target_settings, dimension=dim) as target,
    ):
        total = source.catalog.count()
        with tqdm(total=total, desc=f"migrate -> {to.value}", unit="item") as bar:
            report = migrate(
                source,
                target,
                max_blob_bytes=settings.limits.max_blob_bytes,
                resume=resume,
                batch_size=batch_size,
                workers=workers,
                verify_sample=verify_sample,
                on_progress=bar.update,
            )
        summary = report.as_dict()
        summary["lexical_stats"] = refresh_lexical_stats(target, target_settings)
    emit(summary, json_path)
    if not report.ok:
        typer.echo("migration incomplete or not verified: see the summary above", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("reindex")(reindex_cmd)
    app.command("migrate")(migrate_cmd)
