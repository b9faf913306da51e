"""Exact top-k over a namespace's mapped rows: a fast scan, then an exact re-rank with a proof.

``serve`` caps BLAS at one thread (``runtime.limit_blas_threads``), and there numpy's
matrix-vector product reads about 12.8 GB/s; faiss's ``knn_inner_product`` (the kernel behind
``IndexFlatIP``) reads the same float32 rows about twice as fast on one thread, keeps the top k in
a heap as it goes (no score array, no ``argpartition``), and works on the mapped file through a
pointer, so nothing is copied. With ``half`` rows (``embedded.half``: the same rows rounded to
IEEE fp16, half the bytes) faiss's fp16 scalar-quantizer scanner reads those instead. A filter is
a bitmap the kernel consults per row (``IDSelectorBitmap``): rows outside it are skipped, never
gathered into a copy. Figures: docs/stores-vectors.md.

Exact, whichever rows are scanned: the scan's score of a row is within a proven bound ``eps`` of
its true cosine (``scan_error``), so every row of the true top k scores at least ``t - 2 eps`` in
the scan, ``t`` being the scan's k-th best score. All rows above that cut (the scan is widened
until its last result falls below it) are re-scored in float64 from the float32 rows and the best
k returned, ties by row (insertion order): the answer is the float64 brute force's, ids and
scores, on any data, near-ties included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt

# faiss 1.15's stubs lack the pointer overloads and search parameters used here; the calls are
# checked by the tests (tests/unit/stores/embedded/test_scan.py, the vector contract suite).
faiss: Any = _faiss

Rows = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]
Scan = Callable[
    [int], tuple[Rows, Scores]
]  # the best ``k`` rows of a part, scan scores, best first

EXTRA = 32  # rows a scan brings beyond k: enough for the cut on all but (near-)duplicate data


def _empty() -> tuple[Rows, Scores]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)


class Bitmap:
    """A row mask as the packed bitmap faiss's selectors read (the array is kept alive here)."""

    def __init__(self, mask: npt.NDArray[np.bool_]) -> None:
        self.bits = np.packbits(mask, bitorder="little")
        self.count = int(np.count_nonzero(mask))
        self.selector = faiss.IDSelectorBitmap(len(self.bits), faiss.swig_ptr(self.bits))


def scan_error(dimension: int, *, half: bool) -> float:
    """A bound on |scan score - true cosine| for unit rows and a unit query (float32 data).

    The true cosine is sum(q_j x_j) over the float32 values. The scan evaluates sum(q_j h_j) in
    float32 (any order, FMA or not), where h_j = x_j for float32 rows, fp16(x_j) for half rows:
    * rounding to fp16: |h_j - x_j| <= 2^-11 |x_j| + 2^-25 (the second term for subnormals), so
      the sum moves by at most 2^-11 B + 2^-25 sqrt(d), with B = sum|q_j x_j| <= |q| |x|;
    * float32 evaluation of a d-term dot product: at most gamma_d sum|q_j h_j|, where
      gamma_d = d u / (1 - d u), u = 2^-24 (Higham, Accuracy and Stability, section 3.1).
    Rows and queries are unit vectors rounded to float32, so B <= (1 + 1e-6)^2; the bound is then
    rounded up by a factor of 2 on the float32 part for margin against the float32 subtraction
    that applies it.
    """
    u = 2.0**-24
    gamma = dimension * u / (1 - dimension * u)
    b = (1 + 1e-6) ** 2
    if not half:
        return 2 * gamma * b
    rounding = 2.0**-11 * b + 2.0**-25 * math.sqrt(dimension)
    return rounding + 2 * gamma * (b + rounding)


def rescore(
    matrix: npt.NDArray[np.float32], q: npt.NDArray[np.float32], rows: Rows, top_k: int
) -> tuple[Rows, Scores]:
    """Candidate ``rows`` re-scored in float64 from the float32 rows: the best ``top_k``, best
    first, ties by row; scores rounded to float32 once, at the end."""
    rows = np.unique(rows)  # sorted: the tie order
    if len(rows) == 0:
        return _empty()
    exact = matrix[rows].astype(np.float64) @ q.astype(np.float64)  # a handful of rows
    order = np.lexsort((rows, -exact))[:top_k]
    return rows[order], exact[order].astype(np.float32)


def exact_top(
    matrix: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | None,
    top_k: int,
    *,
    start: int = 0,
    half: npt.NDArray[np.float16] | None = None,
) -> tuple[Rows, Scores]:
    """The exact ``top_k`` rows from ``start`` on by dot product (unit rows, so cosine).

    ``mask`` (one flag per row of ``matrix``, or None for all) keeps the rows that may answer.
    ``half``: fp16 copies of the first ``len(half)`` rows of ``matrix``, scanned in their place;
    rows past them are scanned in float32. The result is the same either way.
    """
    q = np.ascontiguousarray(q, dtype=np.float32)
    n, d = matrix.shape
    covered = max(start, min(len(half), n)) if half is not None else start
    parts: list[tuple[Scan, float]] = []
    if half is not None and covered > start:
        parts.append((_half_scan(half, q, mask, start, covered), scan_error(d, half=True)))
    if n > covered:
        parts.append((_float_scan(matrix, q, mask, covered, n), scan_error(d, half=False)))
    return rescore(matrix, q, _candidates(parts, top_k), top_k)


def _candidates(parts: list[tuple[Scan, float]], top_k: int) -> Rows:
    """Every row that can be in the true top ``top_k`` (see the module docstring)."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    worst = max(eps for _, eps in parts)
    widths = [top_k + EXTRA] * len(parts)
    found = [scan(width) for (scan, _), width in zip(parts, widths, strict=True)]
    while True:
        scores = np.concatenate([s for _, s in found])
        if len(scores) <= top_k:  # every kept row is a candidate
            return np.concatenate([r for r, _ in found])
        kth = float(np.partition(scores, len(scores) - top_k)[len(scores) - top_k])
        wider = False
        for i, ((rows, part_scores), (scan, eps)) in enumerate(zip(found, parts, strict=True)):
            if len(rows) == widths[i] and part_scores[-1] >= kth - worst - eps:
                widths[i] *= 4  # rows above the cut may lie past this part's last result
                found[i] = scan(widths[i])
                wider = True
        if not wider:
            return np.concatenate(
                [
                    rows[part_scores >= kth - worst - eps]
                    for (rows, part_scores), (_, eps) in zip(found, parts, strict=True)
                ]
            )


def _selector(mask: npt.NDArray[np.bool_] | None, lo: int, hi: int) -> tuple[Bitmap | None, int]:
    if mask is None:
        return None, hi - lo
    bitmap = Bitmap(mask[lo:hi])
    return bitmap, bitmap.count


def _float_scan(
    matrix: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | None,
    lo: int,
    hi: int,
) -> Scan:
    block = matrix[lo:hi]
    if not block.flags.c_contiguous:  # a mapped file is; this guards a caller's slice
        block = np.ascontiguousarray(block)
    bitmap, kept = _selector(mask, lo, hi)
    n, d = block.shape

    def scan(width: int) -> tuple[Rows, Scores]:
        k = min(width, kept)
        if k == 0:
            return _empty()
        scores = np.empty((1, k), dtype=np.float32)
        rows = np.full((1, k), -1, dtype=np.int64)
        faiss.knn_inner_product(
            faiss.swig_ptr(q),
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
        return rows[0][found] + lo, scores[0][found]

    return scan


def _half_scan(
    half: npt.NDArray[np.float16],
    q: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | None,
    lo: int,
    hi: int,
) -> Scan:
    """faiss's fp16 scalar-quantizer scanner (the code of ``IndexScalarQuantizer`` QT_fp16:
    halves widened to float32, multiplied by the float32 query) over the mapped halves in place."""
    block = half[lo:hi]
    bitmap, kept = _selector(mask, lo, hi)
    n, d = block.shape
    quantizer = faiss.ScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16)

    def scan(width: int) -> tuple[Rows, Scores]:
        k = min(width, kept)
        if k == 0:
            return _empty()
        # store_pairs: a result's id (and the selector's key) is its position in ``block``.
        scanner = quantizer.select_InvertedListScanner(
            faiss.METRIC_INNER_PRODUCT, None, True, None if bitmap is None else bitmap.selector
        )
        scanner.set_query(faiss.swig_ptr(q))
        scanner.set_list(0, 0.0)
        scores = np.full(k, -np.inf, dtype=np.float32)  # an empty min-heap
        rows = np.full(k, -1, dtype=np.int64)
        codes = block.view(np.uint8)
        scanner.scan_codes(
            n, faiss.swig_ptr(codes), None, faiss.swig_ptr(scores), faiss.swig_ptr(rows), k
        )
        order = np.argsort(-scores, kind="stable")
        found = rows[order] >= 0
        return rows[order][found] + lo, scores[order][found]

    return scan
