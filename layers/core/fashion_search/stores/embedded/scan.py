"""Exact top-k over a namespace's mapped float32 rows, with faiss's inner-product kernel.

``serve`` caps BLAS at one thread (``runtime.limit_blas_threads``), and there numpy's
matrix-vector product reads about 12.8 GB/s; faiss's ``knn_inner_product`` (the kernel behind
``IndexFlatIP``) reads the same rows about twice as fast on one thread, keeps the top k in a heap
as it goes (no score array, no ``argpartition``), and works on the mapped file through a pointer,
so nothing is copied. A filter is a bitmap the kernel consults per row (``IDSelectorBitmap``):
rows outside it are skipped, never gathered into a copy. Figures: docs/stores-vectors.md.
"""

from __future__ import annotations

from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt

# faiss 1.15's stubs lack the pointer overloads and search parameters used here; the calls are
# checked by the tests (tests/unit/stores/test_vectors_scan.py, the vector contract suite).
faiss: Any = _faiss

Rows = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]


def _empty() -> tuple[Rows, Scores]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)


class Bitmap:
    """A row mask as the packed bitmap faiss's selectors read (the array is kept alive here)."""

    def __init__(self, mask: npt.NDArray[np.bool_]) -> None:
        self.bits = np.packbits(mask, bitorder="little")
        self.count = int(np.count_nonzero(mask))
        self.selector = faiss.IDSelectorBitmap(len(self.bits), faiss.swig_ptr(self.bits))


def exact_top(
    matrix: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | None,
    top_k: int,
    *,
    start: int = 0,
) -> tuple[Rows, Scores]:
    """The ``top_k`` rows from ``start`` on by dot product (unit rows, so cosine), best first.

    ``mask`` (one flag per row of ``matrix``, or None for all) keeps the rows that may answer.
    """
    block = matrix[start:]
    n, d = block.shape
    if n == 0:
        return _empty()
    k = min(top_k, n)
    bitmap = None
    if mask is not None:
        bitmap = Bitmap(mask[start : start + n])
        k = min(k, bitmap.count)
        if k == 0:
            return _empty()
    if not block.flags.c_contiguous:  # a mapped file is; this guards a caller's slice
        block = np.ascontiguousarray(block)
    query = np.ascontiguousarray(q, dtype=np.float32).reshape(1, d)
    scores = np.empty((1, k), dtype=np.float32)
    rows = np.full((1, k), -1, dtype=np.int64)
    faiss.knn_inner_product(
        faiss.swig_ptr(query),
        faiss.swig_ptr(block),
        d,
        1,
        n,
        k,
        faiss.swig_ptr(scores),
        faiss.swig_ptr(rows),
        None if bitmap is None else bitmap.selector,
    )
    found = rows[0] >= 0
    return rows[0][found] + start, scores[0][found]


def rescore(
    matrix: npt.NDArray[np.float32], q: npt.NDArray[np.float32], rows: Rows, top_k: int
) -> tuple[Rows, Scores]:
    """Exact fp32 scores of candidate ``rows`` (an approximate search's), best ``top_k`` first."""
    rows = np.unique(rows)
    if len(rows) == 0:
        return _empty()
    scores = np.asarray(matrix[rows] @ q, dtype=np.float32)  # a handful of rows: a small copy
    order = np.argsort(-scores, kind="stable")[:top_k]
    return rows[order], scores[order]
