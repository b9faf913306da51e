"""``evaluate_catalog``: embed a styles.csv catalog with any ``Embedder`` and run the protocol
on the chosen subsets."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fashion_search.errors import InvalidInput
from fashion_search.eval.hybrid import hybrid_tasks
from fashion_search.eval.protocol import KS, TaskResult, evaluate_embeddings
from fashion_search.eval.split import Subset, select
from fashion_search.eval.styles import StyleRow
from fashion_search.model.base import Embedder

log = logging.getLogger(__name__)
Progress = Callable[[int], None]  # images embedded so far (increment)


@dataclass(frozen=True)
class Evaluation:
    model_id: str
    products: int
    sections: dict[str, list[TaskResult]]
    failed_images: int


def embed_catalog(
    embedder: Embedder,
    rows: Sequence[StyleRow],
    *,
    batch: int = 64,
    progress: Progress | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Image vectors in row order and the indices of rows whose image failed to decode."""
    vectors: list[np.ndarray] = []
    failed: list[int] = []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        out = embedder.embed_images([r.image.read_bytes() for r in chunk])
        vectors.append(out.vectors)
        failed += [start + i for i in out.errors]
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(vectors).astype(np.float32), failed


def evaluate_catalog(
    embedder: Embedder,
    rows: Sequence[StyleRow],
    *,
    subsets: Sequence[Subset] = (Subset.ALL,),
    ks: Sequence[int] = KS,
    progress: Progress | None = None,
    alphas: Sequence[float] = (),
) -> Evaluation:
    """Marqo's tasks per subset; with ``alphas``, also dense / lexical / hybrid side by side
    (``eval.hybrid``) at each of those fusion weights."""
    if len(rows) < 2:
        raise InvalidInput(f"evaluation needs at least 2 products with images, got {len(rows)}")
    vectors, failed = embed_catalog(embedder, rows, progress=progress)
    if failed:
        log.warning("%d images could not be decoded and are left out", len(failed))
        keep = np.setdiff1d(np.arange(len(rows)), failed)
        rows = [rows[i] for i in keep]
        vectors = vectors[keep]
    position = {id(r): i for i, r in enumerate(rows)}
    sections: dict[str, list[TaskResult]] = {}
    for subset in subsets:
        chosen = select(rows, subset)
        if len(chosen) < 2:
            log.warning("subset %s has %d products; skipped", subset.value, len(chosen))
            continue
        idx = np.array([position[id(r)] for r in chosen])
        sections[subset.value] = evaluate_embeddings(
            chosen, vectors[idx], embedder.embed_texts, ks=ks
        )
        if alphas:
            sections[subset.value] += hybrid_tasks(
                chosen, vectors[idx], embedder.embed_texts, alphas=alphas, ks=ks
            )
    return Evaluation(embedder.model_id, len(rows), sections, len(failed))
