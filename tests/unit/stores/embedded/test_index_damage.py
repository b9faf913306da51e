"""A damaged embedded index (a segment file shorter than its slot table says, or gone) is named
on open, never a raw numpy error, and ``drop_damaged`` (used by ``reindex``) clears it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fashion_search.errors import IndexDamaged
from fashion_search.stores.embedded.vector_index import EmbeddedVectorIndex
from fashion_search.types import VectorRecord

DIM = 8


def _records(n: int, prefix: str = "v") -> list[VectorRecord]:
    rng = np.random.default_rng(0)
    return [VectorRecord(f"{prefix}{i}", rng.normal(size=DIM).astype(np.float32)) for i in range(n)]


def _filled(path: Path) -> None:
    index = EmbeddedVectorIndex(path, dimension=DIM)
    index.upsert(_records(10))
    index.upsert(_records(4, "w"), namespace="other")
    index.close()


def _segment(path: Path) -> Path:
    return path / "ns-0-0.f32"


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_segment_is_named_on_open(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "index"
    _filled(path)
    if damage == "truncate":
        os.truncate(_segment(path), 3 * DIM * 4 + 5)  # 3 rows and a bit of 10
    else:
        _segment(path).unlink()
    with pytest.raises(IndexDamaged) as info:
        EmbeddedVectorIndex(path, dimension=DIM)
    message = info.value.message
    assert "ns-0-0.f32" in message and "fashion-search reindex" in message
    assert ("3 of 10" in message) if damage == "truncate" else ("missing" in message)


def test_longer_segment_is_fine(tmp_path: Path) -> None:
    # Bytes past the committed rows are what a crash before the commit leaves: not damage.
    path = tmp_path / "index"
    _filled(path)
    with open(_segment(path), "ab") as f:
        f.write(b"\0" * 100)
    index = EmbeddedVectorIndex(path, dimension=DIM)
    assert index.count() == 10
    index.close()


def test_truncated_after_open_fails_the_query_by_name(tmp_path: Path) -> None:
    path = tmp_path / "index"
    _filled(path)
    index = EmbeddedVectorIndex(path, dimension=DIM)  # healthy now; namespaces load lazily
    os.truncate(_segment(path), DIM * 4)
    with pytest.raises(IndexDamaged, match="fashion-search reindex"):
        index.query(np.ones(DIM, np.float32), top_k=3)
    index.close()


def test_drop_damaged_empties_only_the_damaged_namespace(tmp_path: Path) -> None:
    path = tmp_path / "index"
    _filled(path)
    os.truncate(_segment(path), 0)
    index = EmbeddedVectorIndex(path, dimension=DIM, drop_damaged=True)
    assert index.dropped == {"": 10}
    assert index.count() == 0 and index.count(namespace="other") == 4
    index.upsert(_records(10))  # the rebuild reindex does
    assert index.count() == 10
    best = index.query(_records(10)[7].values, top_k=1)
    assert best[0].id == "v7" and best[0].score == pytest.approx(1.0, abs=1e-5)
    index.close()
    reopened = EmbeddedVectorIndex(path, dimension=DIM)  # healthy again
    assert reopened.count() == 10
    reopened.close()
