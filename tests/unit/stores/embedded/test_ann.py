"""The embedded index's approximate graph: when it serves, what it finds, and its file's life.

The filter semantics on the graph are the vector contract suite's (tests/contract, the
``embedded-ann`` adapter); the kill -9 test beside the exact index's is there too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fashion_search.stores.embedded.ann import AnnParams, Graph
from fashion_search.stores.embedded.vector_index import EmbeddedVectorIndex, HalfParams
from fashion_search.types import VectorRecord

DIM = 32
NOW = AnnParams(min_vectors=1, background=False)  # the graph serves, built inside the query


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres: closer to real embeddings than isotropic noise, on which
    any graph index needs a beam close to a full scan."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, DIM), dtype=np.float32)
    x = centres[rng.integers(0, 50, n)] + 0.6 * rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def records(x: np.ndarray, first: int = 0) -> list[VectorRecord]:
    return [
        VectorRecord(f"v{first + i}", row, {"colour": ["Red", "Blue"][(first + i) % 2]})
        for i, row in enumerate(x)
    ]


def graph_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("ann-"))


def test_graph_recall_at_10_against_the_exact_scan(tmp_path: Path) -> None:
    x = clustered(4000)
    queries = clustered(40, seed=5)
    exact = EmbeddedVectorIndex(tmp_path / "exact", dimension=DIM)
    approx = EmbeddedVectorIndex(tmp_path / "ann", dimension=DIM, ann=NOW)
    for index in (exact, approx):
        index.upsert(records(x))
    hits = 0
    for q in queries:
        truth = {m.id: m.score for m in exact.query(q, top_k=10)}
        got = approx.query(q, top_k=10)
        hits += len(truth.keys() & {m.id for m in got})
        for m in got:  # re-scored in fp32: the scores are exact cosines, best first
            assert m.score == pytest.approx(float(x[int(m.id[1:])] @ q), abs=1e-5)
        assert [m.score for m in got] == sorted((m.score for m in got), reverse=True)
    assert hits / (10 * len(queries)) >= 0.95
    assert approx.engine() == "ann" and exact.engine() == "exact"
    assert graph_files(tmp_path / "ann") == ["ann-0-0.faiss"]
    assert graph_files(tmp_path / "exact") == []


def test_below_the_threshold_the_scan_serves(tmp_path: Path) -> None:
    index = EmbeddedVectorIndex(
        tmp_path / "ix", dimension=DIM, ann=AnnParams(min_vectors=100, background=False)
    )
    index.upsert(records(clustered(99)))
    index.query(clustered(1, seed=3)[0], top_k=5)
    assert index.engine() == "exact" and graph_files(tmp_path / "ix") == []
    index.upsert(records(clustered(1, seed=4), first=99))
    assert index.engine() == "ann"


def test_rows_newer_than_the_graph_are_found(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    x = clustered(600)
    index = EmbeddedVectorIndex(path, dimension=DIM, ann=NOW)
    index.upsert(records(x[:500]))
    index.query(x[0], top_k=1)  # builds and saves a graph of 500 rows
    assert Graph.load(path / "ann-0-0.faiss", DIM).ntotal == 500  # type: ignore[union-attr]
    index.upsert(records(x[500:], first=500))  # the graph's tail, scanned exactly
    index.delete(["v3"])
    for i in (42, 550, 599):
        assert [m.id for m in index.query(x[i], top_k=1)] == [f"v{i}"]
    assert "v3" not in {m.id for m in index.query(x[3], top_k=5)}
    index.close()
    # Reopened: the saved 500-row graph is loaded and extended, not rebuilt from nothing.
    now_and_whole = AnnParams(min_vectors=1, tail_rows=0, background=False)
    reopened = EmbeddedVectorIndex(path, dimension=DIM, ann=now_and_whole)
    assert [m.id for m in reopened.query(x[599], top_k=1)] == ["v599"]
    assert Graph.load(path / "ann-0-0.faiss", DIM).ntotal == 600  # type: ignore[union-attr]
    assert "v3" not in {m.id for m in reopened.query(x[3], top_k=50)}
    reopened.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-dimension", "other-rows"])
def test_a_damaged_or_foreign_graph_file_is_rebuilt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "ix"
    x = clustered(300)
    index = EmbeddedVectorIndex(path, dimension=DIM, ann=NOW)
    index.upsert(records(x))
    index.query(x[0], top_k=1)
    index.close()
    graph = path / "ann-0-0.faiss"
    if damage == "garbage":
        graph.write_bytes(b"\x00not a faiss index" * 100)
    elif damage == "truncated":
        graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    elif damage == "other-dimension":
        small = Graph.new(DIM // 2, NOW)
        small.add(np.ascontiguousarray(x[:10, : DIM // 2]), 10)
        small.save(graph)
    else:  # another index's graph, say of a namespace id reused after a drop: valid, foreign
        foreign = Graph.new(DIM, NOW)
        foreign.add(clustered(250, seed=99), 250)
        foreign.save(graph)
    reopened = EmbeddedVectorIndex(path, dimension=DIM, ann=NOW)
    for i in range(0, 300, 10):
        assert [m.id for m in reopened.query(x[i], top_k=1)] == [f"v{i}"]
    assert reopened.engine() == "ann"
    rebuilt = Graph.load(graph, DIM)
    assert rebuilt is not None and rebuilt.ntotal == 300
    reopened.close()


def test_compaction_replaces_the_graph_of_the_old_rows(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    x = clustered(200)
    index = EmbeddedVectorIndex(path, dimension=DIM, ann=NOW)
    index.upsert(records(x))
    index.query(x[0], top_k=1)
    index.delete([f"v{i}" for i in range(0, 200, 2)])
    assert index.compact() == 100
    assert graph_files(path) == []  # its ids were the old generation's row numbers
    assert [m.id for m in index.query(x[7], top_k=1)] == ["v7"]
    assert [m.id for m in index.query(x[8], top_k=1)] != ["v8"]
    assert graph_files(path) == ["ann-0-1.faiss"]
    index.close()


def test_a_background_build_serves_exact_until_the_graph_is_ready(tmp_path: Path) -> None:
    x = clustered(3000)
    index = EmbeddedVectorIndex(tmp_path / "ix", dimension=DIM, ann=AnnParams(min_vectors=1))
    index.upsert(records(x))
    first = index.engine()  # starts the build in a thread
    assert first in ("exact (ann building)", "ann")
    assert [m.id for m in index.query(x[2500], top_k=1)] == ["v2500"]  # served meanwhile
    give_up = time.monotonic() + 60  # a bound on the wait, not a timing assertion
    while index.engine() != "ann" and time.monotonic() < give_up:
        time.sleep(0.05)
    assert index.engine() == "ann"
    assert [m.id for m in index.query(x[2500], top_k=1)] == ["v2500"]
    index.close()


def test_filter_columns_are_built_when_the_namespace_loads(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    EmbeddedVectorIndex(path, dimension=DIM).upsert(records(clustered(50)))
    index = EmbeddedVectorIndex(path, dimension=DIM, filter_fields=["colour", "season"])
    assert index.count() == 50  # loads the namespace
    statements: list[str] = []
    index._db.set_trace_callback(statements.append)
    got = index.query(clustered(1, seed=2)[0], top_k=50, filter={"colour": "Red"})
    assert len(got) == 25 and all(m.metadata["colour"] == "Red" for m in got)
    assert not [s for s in statements if "json_each" in s]  # no column built inside the query
    index.close()


@pytest.mark.parametrize("name", ["ann-0-0.faiss", "half-0-0.f16"])
def test_derived_files_left_half_written_by_dead_processes_are_swept(
    tmp_path: Path, name: str
) -> None:
    """The graph's job sweeps graph temporaries, the fp16 rows' job fp16 ones."""
    import os
    import subprocess
    import sys

    path = tmp_path / "ix"
    if name.startswith("ann-"):
        index = EmbeddedVectorIndex(path, dimension=DIM, ann=NOW)
    else:
        index = EmbeddedVectorIndex(path, dimension=DIM, half=HalfParams(background=False))
    index.upsert(records(clustered(20)))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = path / f"{name}.{int(dead.stdout)}.1.tmp"
    in_flight = path / f"{name}.{os.getpid()}.2.tmp"  # a live process is still writing
    for tmp in (orphan, in_flight):
        tmp.write_bytes(b"half a file")
    index.query(clustered(1, seed=1)[0], top_k=1)  # the job
    assert not orphan.exists() and in_flight.exists()
    index.close()
