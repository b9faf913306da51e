"""``fashion-search model train``: train (or fine-tune) the small CLIP on a styles.csv catalog.

Needs the ``train`` extra (torch); the import happens inside the command so the rest of the
CLI works without it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from fashion_search.errors import ConfigError

model_app = typer.Typer(
    help="Model bundles: train, pull, export, quantize, info.", no_args_is_help=True
)


def _model_group(app: typer.Typer) -> typer.Typer:
    """The ``model`` group, shared with the model helper's commands (whoever registers first
    creates it; modules register in name order)."""
    for group in app.registered_groups:
        if group.name == "model" and group.typer_instance is not None:
            return group.typer_instance
    app.add_typer(model_app, name="model")
    return model_app


def train_command(
    catalog: Annotated[Path, typer.Option(help="A Kaggle-format styles.csv.")],
    out: Annotated[Path, typer.Option(help="Bundle directory to write (replaced if present).")],
    images: Annotated[
        Path | None, typer.Option(help="Images folder (ID.jpg); default: images/ beside the CSV.")
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Fine-tune from this bundle (written by model train).")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the catalog.")] = 40,
    batch_size: Annotated[int, typer.Option(min=2, help="Image-text pairs per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate (use ~5e-4 to fine-tune).")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    image_size: Annotated[int, typer.Option(min=16, help="Image side in pixels.")] = 64,
    embed_dim: Annotated[int, typer.Option(min=8, help="Embedding dimension.")] = 128,
    holdout: Annotated[
        bool, typer.Option(help="Keep held-out products and unseen combinations out of training.")
    ] = True,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: all cores).")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N products.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write metrics here.")] = None,
) -> None:
    """Train the demo CLIP (or fine-tune one) and export it as an immich-layout bundle."""
    try:
        from tqdm import tqdm

        from fashion_search.train.bundle import load_for_finetune, write_bundle
        from fashion_search.train.loop import TrainConfig, load_rows, train
    except ImportError as exc:
        raise ConfigError(
            f"training needs torch ({exc.name} is missing): pip install 'fashion-search[train]'"
        ) from exc

    rows = load_rows(catalog, images or catalog.parent / "images", limit=limit)
    typer.echo(f"catalog: {len(rows)} products with images")
    start = load_for_finetune(init) if init is not None else None
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        image_size=image_size,
        embed_dim=embed_dim,
        holdout=holdout,
        threads=threads,
    )
    bar = tqdm(total=0, unit="step", desc="train")

    def progress(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    result = train(rows, config=config, init=start, progress=progress)
    bar.close()
    metrics = {
        subset: [r.as_row() for r in results] for subset, results in result.evaluation.items()
    }
    info = {
        "trained_on": {"catalog": catalog.name, "products": result.train_products},
        "init": str(init) if init else None,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "final_loss": round(result.final_loss, 4),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "heldout_metrics": metrics,
    }
    write_bundle(result.model, result.tokenizer, out, info=info)
    typer.echo(
        f"trained {result.steps} steps on {result.train_products} products in "
        f"{result.seconds:.0f}s, final loss {result.final_loss:.3f}; bundle: {out}"
    )
    for subset, rows_ in metrics.items():
        typer.echo(f"held-out ({subset}):")
        for row in rows_:
            typer.echo(
                f"  {row['task']:<28} R@1 {row['R@1']:.3f}  R@5 {row['R@5']:.3f}  "
                f"P@10 {row['P@10']:.3f}  MRR {row['MRR']:.3f}  (n={row['queries']})"
            )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(info, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    _model_group(app).command("train")(train_command)
