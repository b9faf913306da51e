"""The embedded index's in-memory side: unit rows, one namespace's mapped matrix, exact top-k."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fashion_search.errors import InvalidInput
from fashion_search.stores.vectors_columns import Columns
from fashion_search.types import Vector


def unit_rows(vectors: Sequence[Vector], dimension: int, ids: Sequence[str]) -> npt.NDArray[Any]:
    matrix = np.asarray(np.stack([np.asarray(v, dtype=np.float64) for v in vectors]))
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise InvalidInput(
            f"vectors must have dimension {dimension}, got shape {matrix.shape[1:]}",
            field="values",
        )
    norms = np.linalg.norm(matrix, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        raise InvalidInput(
            f"vector {ids[int(np.argmax(bad))]!r} is all zeros or not finite; cosine needs "
            "a non-zero finite vector",
            field="values",
        )
    unit: npt.NDArray[np.float32] = (matrix / norms[:, None]).astype(np.float32)
    return unit


class Segment:
    """One namespace in memory: which rows are live, the mapped matrix, built filter columns."""

    def __init__(self, path: Path, nsid: int, dimension: int) -> None:
        self.path = path
        self.nsid = nsid
        self.dimension = dimension
        self.n_rows = 0
        self.live = np.zeros(0, dtype=bool)
        self.n_live = 0
        self.matrix: npt.NDArray[np.float32] = np.zeros((0, dimension), dtype=np.float32)
        self.columns = Columns()

    def grow(self, n_rows: int) -> None:
        if n_rows <= self.n_rows:
            return
        if n_rows > len(self.live):
            live = np.zeros(max(n_rows, 2 * len(self.live), 1024), dtype=bool)
            live[: self.n_rows] = self.live[: self.n_rows]
            self.live = live
        # Map only rows a committed transaction made live: they were fsynced before it.
        self.matrix = np.asarray(
            np.memmap(self.path, dtype=np.float32, mode="r", shape=(n_rows, self.dimension))
        )
        self.n_rows = n_rows

    def set_live(self, row: int, alive: bool) -> None:
        if self.live[row] != alive:
            self.live[row] = alive
            self.n_live += 1 if alive else -1


def top_rows(
    matrix: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | None,
    top_k: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Exact top-k rows by dot product (vectors are unit length, so this is cosine)."""
    n = matrix.shape[0]
    if mask is None:
        candidates = None
        scores = matrix @ q
    else:
        candidates = np.flatnonzero(mask)
        if len(candidates) * 8 < n:
            # A selective filter: scoring only the matching rows reads far less memory.
            scores = matrix[candidates] @ q
        else:
            scores = matrix @ q
            scores = scores[candidates]
    k = min(top_k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    best = best[np.argsort(-scores[best], kind="stable")]
    rows = best if candidates is None else candidates[best]
    return rows.astype(np.int64), scores[best]
