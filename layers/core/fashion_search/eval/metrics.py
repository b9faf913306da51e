"""Ranking metrics on score matrices: pure numpy, tested on hand-made cases.

Conventions (Marqo's): Recall@k is 1 for a query when any relevant document is in its top k
(a hit rate; each query usually has one relevant product), Precision@k is the share of the top k
that is relevant, MRR averages 1/rank of the first relevant document (0 when none in the list).
Ties are broken by document order (a stable sort), never in the metric's favour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fashion_search.errors import InvalidInput

Matrix = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class RankingScores:
    recall: dict[int, float]
    precision: dict[int, float]
    mrr: float
    queries: int


def rank_metrics(scores: Matrix, relevant: Mask, *, ks: Sequence[int]) -> RankingScores:
    """``scores[q, d]`` (higher is better) and ``relevant[q, d]``; queries with no relevant
    document at all are left out (they measure the catalog, not the model)."""
    if scores.shape != relevant.shape or scores.ndim != 2:
        raise InvalidInput(f"scores {scores.shape} and relevance {relevant.shape} must match (2-D)")
    if not ks or min(ks) < 1:
        raise InvalidInput(f"ks must be positive, got {list(ks)}")
    keep = relevant.any(axis=1)
    scores, relevant = scores[keep], relevant[keep]
    n = int(scores.shape[0])
    if n == 0:
        return RankingScores(dict.fromkeys(ks, 0.0), dict.fromkeys(ks, 0.0), 0.0, 0)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(relevant, order, axis=1)
    first = ranked.argmax(axis=1)  # a relevant one exists in every kept row
    mrr = float(np.mean(1.0 / (first + 1)))
    recall = {k: float(np.mean(ranked[:, :k].any(axis=1))) for k in ks}
    precision = {k: float(np.mean(ranked[:, :k].sum(axis=1) / k)) for k in ks}
    return RankingScores(recall=recall, precision=precision, mrr=mrr, queries=n)


def same_label(query_labels: Sequence[str], doc_labels: Sequence[str]) -> Mask:
    """``relevant[q, d]``: the labels are equal, compared case-insensitively."""
    q = np.array([s.casefold() for s in query_labels], dtype=object)
    d = np.array([s.casefold() for s in doc_labels], dtype=object)
    return np.asarray(q[:, None] == d[None, :], dtype=np.bool_)


def document_scores(
    queries: Matrix,
    doc_images: Matrix,
    doc_texts: Matrix | None = None,
    *,
    image_weight: float = 0.9,
    text_weight: float = 0.1,
) -> Matrix:
    """Cosine scores of queries against documents made of an image and a text (Marqo scores a
    product as 0.9 * image + 0.1 * text; without texts it is the image alone)."""
    scores = queries @ doc_images.T
    if doc_texts is None:
        return scores.astype(np.float32)
    return (image_weight * scores + text_weight * (queries @ doc_texts.T)).astype(np.float32)


def image_to_image(vectors: Matrix, labels: Sequence[str], *, ks: Sequence[int]) -> RankingScores:
    """Every image queries all the others (itself excluded); relevant: the same label."""
    scores = (vectors @ vectors.T).astype(np.float32)
    np.fill_diagonal(scores, -np.inf)
    relevant = same_label(labels, labels)
    np.fill_diagonal(relevant, False)
    return rank_metrics(scores, relevant, ks=ks)
