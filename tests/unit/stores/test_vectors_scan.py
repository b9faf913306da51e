"""The exact scan: faiss's kernel on the mapped rows gives numpy's answer, filters copy no rows."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from fashion_search.stores.embedded.scan import exact_top, rescore

DIM = 64


def unit_matrix(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def mapped(tmp_path: Path, x: np.ndarray) -> np.ndarray:
    path = tmp_path / "rows.f32"
    x.tofile(path)
    return np.asarray(np.memmap(path, dtype=np.float32, mode="r", shape=x.shape))


def numpy_top(x: np.ndarray, q: np.ndarray, keep: np.ndarray, k: int) -> list[int]:
    scores = np.where(keep, x @ q, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [int(r) for r in order if keep[r]]


@pytest.mark.parametrize("keep_share", [1.0, 0.5, 0.05, 0.0])
@pytest.mark.parametrize("start", [0, 777])
def test_same_rows_and_scores_as_numpy(tmp_path: Path, keep_share: float, start: int) -> None:
    x = mapped(tmp_path, unit_matrix(3000))
    q = unit_matrix(1, seed=9)[0]
    rng = np.random.default_rng(1)
    mask = rng.random(len(x)) < keep_share if keep_share < 1 else None
    keep = np.ones(len(x), dtype=bool) if mask is None else mask.copy()
    keep[:start] = False
    for k in (1, 10, 2000):
        rows, scores = exact_top(x, q, mask, k, start=start)
        assert rows.tolist() == numpy_top(x, q, keep, k)
        np.testing.assert_allclose(scores, x[rows] @ q, atol=1e-5)
        assert rows.dtype == np.int64 and scores.dtype == np.float32


def test_a_filtered_scan_copies_no_rows(tmp_path: Path) -> None:
    # 20k x 64 float32 rows are 5 MB; a 10% filter used to gather 0.5 MB of them per query.
    x = mapped(tmp_path, unit_matrix(20_000))
    q = unit_matrix(1, seed=3)[0]
    mask = np.random.default_rng(2).random(len(x)) < 0.1
    exact_top(x, q, mask, 10)  # warm: imports, lazily built wrappers
    tracemalloc.start()
    rows, _ = exact_top(x, q, mask, 10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows.tolist() == numpy_top(x, q, mask, 10)
    assert peak < 64 * 1024  # the bitmap (2.5 KB) and the k results, not 512 KB of rows


def test_rescore_orders_candidates_exactly_and_drops_repeats() -> None:
    x = unit_matrix(100)
    q = unit_matrix(1, seed=4)[0]
    candidates = np.array([5, 17, 5, 42, 99, 0], dtype=np.int64)
    rows, scores = rescore(x, q, candidates, 3)
    expected = sorted({5, 17, 42, 99, 0}, key=lambda r: -float(x[r] @ q))[:3]
    assert rows.tolist() == expected
    np.testing.assert_allclose(scores, x[expected] @ q, atol=1e-6)
    assert len(rescore(x, q, np.zeros(0, dtype=np.int64), 3)[0]) == 0
