"""The exact scan: faiss's kernels on the mapped float32 or fp16 rows give the float64 brute
force's answer exactly (ids and scores), near-ties included; filters copy no rows."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from fashion_search.stores.embedded.half import halves
from fashion_search.stores.embedded.scan import (
    _float_scan,
    _half_scan,
    exact_top,
    rescore,
    scan_error,
)

DIM = 64


def unit_matrix(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def mapped(tmp_path: Path, x: np.ndarray) -> np.ndarray:
    path = tmp_path / "rows.f32"
    x.tofile(path)
    return np.asarray(np.memmap(path, dtype=np.float32, mode="r", shape=x.shape))


def numpy_top(x: np.ndarray, q: np.ndarray, keep: np.ndarray, k: int) -> list[int]:
    return brute_force(x, q, keep, k)[0]


def brute_force(
    x: np.ndarray, q: np.ndarray, keep: np.ndarray, k: int
) -> tuple[list[int], np.ndarray]:
    """The reference: every kept row scored in float64, best first, ties by row."""
    scores = x.astype(np.float64) @ q.astype(np.float64)
    kept = np.flatnonzero(keep)
    order = kept[np.lexsort((kept, -scores[kept]))][:k]
    return [int(r) for r in order], scores[order].astype(np.float32)


def half_copy(tmp_path: Path, x: np.ndarray, rows: int | None = None) -> np.ndarray:
    if rows == 0:
        return np.zeros((0, DIM), dtype=np.float16)
    path = tmp_path / "rows.f16"
    halves(np.asarray(x[:rows])).tofile(path)
    return np.asarray(np.memmap(path, dtype=np.float16, mode="r", shape=(len(x[:rows]), DIM)))


@pytest.mark.parametrize("half_rows", [None, 0, 1800, 3000])
@pytest.mark.parametrize("keep_share", [1.0, 0.5, 0.05, 0.0])
@pytest.mark.parametrize("start", [0, 777])
def test_same_rows_and_scores_as_the_float64_brute_force(
    tmp_path: Path, keep_share: float, start: int, half_rows: int | None
) -> None:
    x = mapped(tmp_path, unit_matrix(3000))
    half = None if half_rows is None else half_copy(tmp_path, x, half_rows)
    q = unit_matrix(1, seed=9)[0]
    rng = np.random.default_rng(1)
    mask = rng.random(len(x)) < keep_share if keep_share < 1 else None
    keep = np.ones(len(x), dtype=bool) if mask is None else mask.copy()
    keep[:start] = False
    for k in (1, 10, 2000):
        rows, scores = exact_top(x, q, mask, k, start=start, half=half)
        want_rows, want_scores = brute_force(x, q, keep, k)
        assert rows.tolist() == want_rows
        assert scores.tolist() == want_scores.tolist()
        assert rows.dtype == np.int64 and scores.dtype == np.float32


def near_ties(n_close: int, n_far: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose fp16 copies are identical but whose float32 cosines to ``q`` differ (by about
    1e-6, far below fp16's resolution of 5e-4), exact duplicates among them, and far rows."""
    rng = np.random.default_rng(seed)
    q = unit_matrix(1, seed=seed + 100)[0]
    base = q + 0.8 * unit_matrix(1, seed=seed + 200)[0]
    close = np.tile(base, (n_close, 1)).astype(np.float64)
    close += 1e-6 * rng.standard_normal(close.shape)
    close[::7] = close[0]  # exact duplicates: a true tie, broken by row
    far = unit_matrix(n_far, seed=seed + 300).astype(np.float64)
    x = np.concatenate([far[: n_far // 2], close, far[n_far // 2 :]])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x, q


@pytest.mark.parametrize("filtered", [False, True])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_near_ties_fp16_cannot_order_come_out_in_the_exact_order(
    tmp_path: Path, filtered: bool, k: int
) -> None:
    x, q = near_ties(n_close=600, n_far=4000)
    x = mapped(tmp_path, x)
    half = half_copy(tmp_path, x)
    keep = np.ones(len(x), dtype=bool)
    mask = None
    if filtered:
        mask = keep = np.random.default_rng(5).random(len(x)) < 0.5
    want_rows, want_scores = brute_force(x, q, keep, k)
    # The data is adversarial: fp16 scores alone do not give the exact order.
    fp16 = np.where(keep, half.astype(np.float32) @ q, -np.inf)
    assert np.argsort(-fp16, kind="stable")[:k].tolist() != want_rows
    for rows_16, start in ((half, 0), (half, 2000), (None, 0)):
        rows, scores = exact_top(x, q, mask, k, half=rows_16, start=start)
        keep_from = keep.copy()
        keep_from[:start] = False
        want_rows, want_scores = brute_force(x, q, keep_from, k)
        assert rows.tolist() == want_rows
        assert scores.tolist() == want_scores.tolist()


@pytest.mark.parametrize("half", [False, True])
def test_the_scan_error_bound_holds(tmp_path: Path, half: bool) -> None:
    # Rows with subnormal-sized components too: fp16's absolute error term.
    x = unit_matrix(2000, seed=11)
    x[:, :8] *= 1e-6
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = unit_matrix(1, seed=12)[0]
    truth = x.astype(np.float64) @ q.astype(np.float64)
    # Every row's score as faiss's kernel computes it (the scan's own, not numpy's).
    scan = _half_scan(halves(x), q, None, 0, len(x)) if half else _float_scan(x, q, None, 0, len(x))
    rows, scanned = scan(len(x))
    assert len(rows) == len(x)
    error = np.max(np.abs(scanned - truth[rows]))
    assert error <= scan_error(DIM, half=half)
    assert scan_error(DIM, half=half) < (1e-3 if half else 1e-5)  # tight enough to be useful


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
    x[42] = x[17]  # a tie: the earlier row first
    q = unit_matrix(1, seed=4)[0]
    candidates = np.array([5, 42, 17, 5, 99, 0], dtype=np.int64)
    rows, scores = rescore(x, q, candidates, 4)
    keep = np.isin(np.arange(100), candidates)
    assert (rows.tolist(), scores.tolist()) == (
        brute_force(x, q, keep, 4)[0],
        brute_force(x, q, keep, 4)[1].tolist(),
    )
    assert len(rescore(x, q, np.zeros(0, dtype=np.int64), 3)[0]) == 0
