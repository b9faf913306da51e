"""``fashion-search embed``: CLIP embeddings as JSON lines, for other tools or a quick check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fashion_search.errors import FashionSearchError, InvalidInput
from fashion_search.settings import Settings


def _read_image(source: str, settings: Settings) -> bytes:
    """A local file (read up to the blob cap) or an http(s) URL fetched by the SSRF-safe fetcher."""
    if source.startswith(("http://", "https://")):
        from fashion_search.fetch import fetch_image

        return fetch_image(source, settings=settings.fetch)
    path = Path(source)
    if not path.is_file():
        raise InvalidInput(f"no such image file: {source}")
    limit = settings.limits.max_blob_bytes
    with path.open("rb") as fh:
        data = fh.read(limit + 1)  # one byte over tells "too large" without reading it all
    return data


def embed_command(
    text: Annotated[
        list[str] | None, typer.Option("--text", help="A text to embed (repeat).")
    ] = None,
    image: Annotated[
        list[str] | None, typer.Option("--image", help="An image path or URL to embed (repeat).")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Bundle directory (default: settings).")
    ] = None,
) -> None:
    """Embed texts or images with the configured model; print one JSON line per input.

    Each line holds "input" and "embedding", or "input" and "error"."""
    from fashion_search.model.embedder import OnnxClipEmbedder

    texts, images = text or [], image or []
    if bool(texts) == bool(images):
        raise InvalidInput("give either --text ... or --image ..., not both and not neither")
    settings = Settings()
    embedder = OnnxClipEmbedder.from_bundle(
        model or settings.model.bundle,
        intra_op_threads=settings.model.intra_op_threads,
        batch_size=settings.model.batch_size,
        max_image_bytes=settings.limits.max_blob_bytes,
        max_image_pixels=settings.limits.max_image_pixels,
    )
    if texts:
        for source, vector in zip(texts, embedder.embed_texts(texts), strict=True):
            typer.echo(json.dumps({"input": source, "embedding": vector.tolist()}))
        return
    # Read every input first: a missing file or a refused URL is that input's error only.
    read: dict[int, bytes] = {}
    failed: dict[int, str] = {}
    for i, source in enumerate(images):
        try:
            read[i] = _read_image(source, settings)
        except FashionSearchError as exc:
            failed[i] = exc.message
    order = sorted(read)
    result = embedder.embed_images([read[i] for i in order])
    lines = {i: {"input": images[i], "error": message} for i, message in failed.items()}
    for j, i in enumerate(order):
        if result.ok(j):
            lines[i] = {"input": images[i], "embedding": result.vectors[j].tolist()}
        else:
            lines[i] = {"input": images[i], "error": result.errors[j].message}
    for i in range(len(images)):  # input order
        typer.echo(json.dumps(lines[i]))


def register(app: typer.Typer) -> None:
    app.command("embed")(embed_command)
