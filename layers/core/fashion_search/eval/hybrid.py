"""Dense-only, lexical-only and hybrid retrieval side by side (issue #16, docs/search.md).

Scored exactly as search serves them: the dense side against *product documents*
(``ingest.documents.document_vector``: 0.9 x image + 0.1 x display-name text, normalised), the
lexical side with ``lexical.lexical_score`` over the products' names and tags, fitted on this
catalog, and the hybrid as ``alpha * dense + (1 - alpha) * lexical``.

Tasks (each in the three modes):
- ``text->image``: each distinct display name as a query; products bearing it are relevant;
- ``category->product`` / ``colour->product``: each articleType / baseColour value;
- ``name-word->product``: each word that names hold but no tag does (a brand, a pattern, a
  product line: what a CLIP picture cannot read), held by at least two products; relevant:
  the products whose name holds it;
- ``image->image (...) [documents]``: each image against the *other* products' documents,
  next to the image-only rows of ``protocol`` (the documents must not make it worse).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fashion_search.eval.metrics import Matrix, rank_metrics, same_label
from fashion_search.eval.protocol import KS, TaskResult
from fashion_search.eval.styles import StyleRow
from fashion_search.ingest.documents import document_vectors
from fashion_search.lexical import (
    LexicalStats,
    document_text,
    document_weights,
    query_weights,
    tokenize,
)
from fashion_search.model.base import l2_normalise
from fashion_search.search import RERANK_EXTRA, RERANK_FACTOR

TextFn = Callable[[Sequence[str]], Matrix]
MIN_WORD_PRODUCTS = 2


class LexicalScorer:
    """``lexical_score`` for many queries against one catalog, as a matrix."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.stats = LexicalStats.fit(texts)
        self._docs = [document_weights(tokenize(t)) for t in texts]
        self._columns: dict[str, np.ndarray] = {}

    def _column(self, token: str) -> np.ndarray:
        if token not in self._columns:
            self._columns[token] = np.array([d.get(token, 0.0) for d in self._docs])
        return self._columns[token]

    def scores(self, queries: Sequence[str]) -> Matrix:
        out = np.zeros((len(queries), len(self._docs)), dtype=np.float64)
        for i, q in enumerate(queries):
            for token, w in query_weights(tokenize(q), self.stats).items():
                out[i] += w * self._column(token)
        return out.astype(np.float32)


def name_words(rows: Sequence[StyleRow]) -> tuple[list[str], list[set[str]]]:
    """Words held by names but by no tag value, and each product's name words."""
    tag_words = {t for r in rows for v in r.tags.values() for t in tokenize(v)}
    per_row = [set(tokenize(r.name)) - tag_words for r in rows]
    counts: dict[str, int] = {}
    for words in per_row:
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    queries = sorted(w for w, n in counts.items() if n >= MIN_WORD_PRODUCTS and w.isalpha())
    return queries, per_row


def hybrid_tasks(
    rows: Sequence[StyleRow],
    image_vectors: Matrix,
    embed_texts: TextFn,
    *,
    alphas: Sequence[float],
    ks: Sequence[int] = KS,
) -> list[TaskResult]:
    names = [r.name for r in rows]
    docs = document_vectors(image_vectors, list(embed_texts(names)))
    lexical = LexicalScorer([document_text(r.name, r.tags) for r in rows])

    def modes(task: str, queries: list[str], relevant: np.ndarray) -> list[TaskResult]:
        dense = embed_texts(queries) @ docs.T
        lex = lexical.scores(queries)
        out = [
            TaskResult(f"{task} [dense]", rank_metrics(dense, relevant, ks=ks)),
            TaskResult(f"{task} [lexical]", rank_metrics(lex, relevant, ks=ks)),
        ]
        for a in alphas:
            fused = (a * dense + (1.0 - a) * lex).astype(np.float32)
            out.append(TaskResult(f"{task} [hybrid {a:.2f}]", rank_metrics(fused, relevant, ks=ks)))
        return out

    results: list[TaskResult] = []
    queries = sorted(set(names), key=names.index)
    results += modes("text->image", queries, same_label(queries, names))
    for field, task in (("articleType", "category->product"), ("baseColour", "colour->product")):
        labels = [r.tags.get(field, "") for r in rows]
        values = sorted({v for v in labels if v})
        if values:
            results += modes(task, values, same_label(values, labels))
    words, per_row = name_words(rows)
    if words:
        relevant = np.array([[w in held for held in per_row] for w in words], dtype=np.bool_)
        results += modes("name-word->product", words, relevant)
    images = l2_normalise(image_vectors)
    image_docs = (images @ docs.T).astype(np.float32)
    np.fill_diagonal(image_docs, -np.inf)
    served = served_by_picture(image_docs, (images @ images.T).astype(np.float32), max(ks))
    for field in ("articleType", "baseColour"):
        labels = [r.tags.get(field, "") for r in rows]
        relevant = same_label(labels, labels)
        np.fill_diagonal(relevant, False)
        for name, scores in (("documents", image_docs), ("served", served)):
            results.append(
                TaskResult(
                    f"image->image ({field}) [{name}]", rank_metrics(scores, relevant, ks=ks)
                )
            )
    return results


def served_by_picture(doc_scores: Matrix, picture_scores: Matrix, top_k: int) -> Matrix:
    """What search serves an image-only query: the best ``RERANK_FACTOR * top_k +
    RERANK_EXTRA`` product documents as candidates, ranked by the pictures alone."""
    k = min(RERANK_FACTOR * top_k + RERANK_EXTRA, doc_scores.shape[1])
    candidates = np.argpartition(-doc_scores, k - 1, axis=1)[:, :k]
    out = np.full(doc_scores.shape, -np.inf, dtype=np.float32)
    rows = np.arange(doc_scores.shape[0])[:, None]
    out[rows, candidates] = picture_scores[rows, candidates]
    out[~np.isfinite(doc_scores)] = -np.inf  # the query itself stays out
    return out
