"""``fashion-search eval``: retrieval quality of a model bundle on a styles.csv catalog."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from fashion_search.eval.split import Subset


def eval_command(
    catalog: Annotated[Path, typer.Option(help="A Kaggle-format styles.csv.")],
    images: Annotated[
        Path | None, typer.Option(help="Images folder (ID.jpg); default: images/ beside the CSV.")
    ] = None,
    model: Annotated[Path, typer.Option(help="Model bundle (immich layout).")] = Path(
        "models/demo"
    ),
    out: Annotated[Path, typer.Option(help="Folder for the Markdown report and plot.")] = Path(
        "reports"
    ),
    subset: Annotated[
        list[Subset] | None,
        typer.Option(help="all, train, heldout, unseen or test (repeatable); default: all."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N products.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="onnxruntime threads.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write figures here.")] = None,
    alpha: Annotated[
        list[float] | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Hybrid fusion weight(s) to report beside dense-only and lexical-only "
            "(repeatable; default: the search default).",
        ),
    ] = None,
    hybrid: Annotated[
        bool, typer.Option("--hybrid/--no-hybrid", help="Report dense / lexical / hybrid.")
    ] = True,
) -> None:
    """Measure a model bundle's retrieval quality on a styles.csv catalog (Marqo's protocol).

    text->image R@1/R@10/MRR (productDisplayName as query, products scored 0.9*image + 0.1*text),
    category/colour->product P@1/P@10, image->image precision@k."""
    from tqdm import tqdm

    from fashion_search.eval.report import bar_chart, markdown, table
    from fashion_search.eval.run import evaluate_catalog
    from fashion_search.eval.styles import read_styles
    from fashion_search.model.embedder import OnnxClipEmbedder
    from fashion_search.settings import Settings

    styles = read_styles(catalog, images or catalog.parent / "images", limit=limit)
    skipped = ", ".join(f"{n} {why}" for why, n in styles.skipped.items()) or "none"
    typer.echo(f"catalog: {len(styles.rows)} products with images (skipped: {skipped})")
    embedder = OnnxClipEmbedder.from_bundle(model, intra_op_threads=threads)
    with tqdm(total=len(styles.rows), unit="img", desc="embed") as bar:
        alphas = (alpha or [Settings().search.alpha]) if hybrid else []
        result = evaluate_catalog(
            embedder,
            styles.rows,
            subsets=subset or [Subset.ALL],
            progress=bar.update,
            alphas=alphas,
        )
    for name, tasks in result.sections.items():
        typer.echo(f"\n[{name}] model {result.model_id}")
        typer.echo(table(tasks))
    out.mkdir(parents=True, exist_ok=True)
    plot = bar_chart(result.sections, out / "eval.png")
    notes = [
        f"model: `{result.model_id}` ({model})",
        f"catalog: `{catalog}`, {result.products} products"
        + (f", {result.failed_images} undecodable images left out" if result.failed_images else ""),
        "text->image: distinct productDisplayName values as queries; products sharing the name are "
        "relevant; products scored 0.9 * image + 0.1 * display-name text (Marqo's protocol)",
        "[dense] / [lexical] / [hybrid a]: as search serves them, against product documents "
        "(docs/search.md); hybrid = a * dense + (1 - a) * lexical",
        f"written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]
    report = out / "eval.md"
    report.write_text(
        markdown(result.sections, title="Retrieval quality", notes=notes, plot=plot.name)
    )
    typer.echo(f"\nreport: {report}  plot: {plot}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        figures = {
            "model_id": result.model_id,
            "products": result.products,
            "sections": {k: [r.as_row() for r in v] for k, v in result.sections.items()},
        }
        json_path.write_text(json.dumps(figures, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
