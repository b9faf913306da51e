"""Marqo's evaluation protocol on a styles.csv catalog, for any pair of embedding functions.

Tasks (see docs/eval.md):
- ``text->image``: each distinct productDisplayName is a query; the products bearing it are
  relevant; a product scores 0.9 * image + 0.1 * its own display-name text. R@1, R@5, R@10, MRR.
  ``text->image (image only)`` ranks by the image alone (no credit for the name matching itself).
- ``category->product`` / ``colour->product``: each articleType / baseColour value is a query
  (the bare value as text), products with it are relevant. P@1, P@10, MRR.
- ``image->image``: every product image queries the others; precision@k of the same articleType
  and of the same baseColour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fashion_search.eval.metrics import (
    Matrix,
    RankingScores,
    document_scores,
    image_to_image,
    rank_metrics,
    same_label,
)
from fashion_search.eval.styles import StyleRow

TextFn = Callable[[Sequence[str]], Matrix]
KS: tuple[int, ...] = (1, 5, 10)


@dataclass(frozen=True, slots=True)
class TaskResult:
    task: str
    scores: RankingScores

    def as_row(self) -> dict[str, float | int | str]:
        row: dict[str, float | int | str] = {"task": self.task, "queries": self.scores.queries}
        for k, v in self.scores.recall.items():
            row[f"R@{k}"] = v
        for k, v in self.scores.precision.items():
            row[f"P@{k}"] = v
        row["MRR"] = self.scores.mrr
        return row


def evaluate_embeddings(
    rows: Sequence[StyleRow],
    image_vectors: Matrix,
    embed_texts: TextFn,
    *,
    ks: Sequence[int] = KS,
    image_weight: float = 0.9,
    text_weight: float = 0.1,
) -> list[TaskResult]:
    """All tasks on ``rows`` whose images embed to ``image_vectors`` (row order)."""
    names = [r.name for r in rows]
    doc_texts = embed_texts(names)
    results: list[TaskResult] = []

    queries = sorted(set(names), key=names.index)
    q = embed_texts(queries)
    scores = document_scores(
        q, image_vectors, doc_texts, image_weight=image_weight, text_weight=text_weight
    )
    relevant = same_label(queries, names)
    results.append(TaskResult("text->image", rank_metrics(scores, relevant, ks=ks)))
    # The same queries against images alone: what a user's free-text search sees, and free of
    # the exact-name match the 0.1 text share rewards.
    image_only = document_scores(q, image_vectors)
    results.append(
        TaskResult("text->image (image only)", rank_metrics(image_only, relevant, ks=ks))
    )

    for field, task in (("articleType", "category->product"), ("baseColour", "colour->product")):
        labels = [r.tags.get(field, "") for r in rows]
        values = sorted({v for v in labels if v})
        if not values:
            continue
        q = embed_texts(values)
        scores = document_scores(
            q, image_vectors, doc_texts, image_weight=image_weight, text_weight=text_weight
        )
        results.append(TaskResult(task, rank_metrics(scores, same_label(values, labels), ks=ks)))

    for field in ("articleType", "baseColour"):
        labels = [r.tags.get(field, "") for r in rows]
        results.append(
            TaskResult(f"image->image ({field})", image_to_image(image_vectors, labels, ks=ks))
        )
    return results
