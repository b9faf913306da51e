"""An approximate index beside the exact one, for big namespaces: a faiss HNSW graph.

Why faiss (``faiss-cpu``): of the three well-kept HNSW libraries, it is the one whose Python API
searches a graph under a filter (``SearchParametersHNSW(sel=IDSelectorBitmap)``: the same row
bitmap the exact scan uses, so a filter means exactly what it means there), adds rows to a built
graph, and ships wheels for manylinux x86_64/aarch64 (abi3, so py3.12 on Lambda), macOS arm64
and Windows. usearch has no filtered search from Python; hnswlib's last release (0.8.0,
2023) ships no wheels at all (a C++ compiler at install time). faiss cannot remove a point from a
graph: a deleted or replaced row stays in it, excluded by the live-row bitmap on every search,
until compaction starts a new file generation and so a new graph.

The graph is derived data, never the source of truth:

* its ids are the row numbers of one file generation (``ann-<nsid>-<gen>.faiss``); rows of a
  generation are never rewritten once committed, so a graph saved by any process at any time
  stays valid for that generation, however old;
* rows committed after the graph was built (its *tail*) are scanned exactly on every query and
  merged, so a query never misses a row; a job extends the graph once the tail grows;
* candidates are re-scored in fp32 from the mapped rows (the graph stores fp16, half the bytes),
  so the scores returned are exact cosines and the order among them is exact;
* the file is written to a temporary name, fsynced and renamed: a crash leaves the old graph or
  the new one, never half of one; an unreadable or mismatched file is ignored and rebuilt.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fashion_search.stores.durable import fsync_dir, sweep_temporaries
from fashion_search.stores.embedded.scan import Bitmap, Rows, Scores, exact_top, faiss, rescore

log = logging.getLogger(__name__)

_ADD_CHUNK = 16384  # rows per faiss add call: bounded temporary memory


@dataclass(frozen=True)
class AnnParams:
    """When and how the embedded index keeps an approximate graph (``Settings.embedded``)."""

    min_vectors: int | None = 200_000  # live vectors from which a namespace gets one; None: never
    ef_search: int = 1024  # HNSW beam width at query time: recall against latency (1M: 0.97)
    m: int = 16  # HNSW links per node (level 0: twice that)
    ef_construction: int = 80  # beam width while building
    candidates: int = 64  # graph hits re-scored exactly (at least top_k)
    exact_below: float = 0.02  # a filter keeping less than this share of rows: exact scan
    tail_rows: int = 10_000  # rows a graph may lack (scanned exactly) before a job adds them
    background: bool = True  # build in a thread (the exact scan serves meanwhile)


class Graph:
    """faiss ``IndexHNSWSQ`` (fp16 storage, inner product) over rows ``0..ntotal-1``."""

    def __init__(self, index: object) -> None:
        self.index = index

    @classmethod
    def new(cls, dimension: int, params: AnnParams) -> Graph:
        index = faiss.IndexHNSWSQ(
            dimension, faiss.ScalarQuantizer.QT_fp16, params.m, faiss.METRIC_INNER_PRODUCT
        )
        index.hnsw.efConstruction = params.ef_construction
        return cls(index)

    @classmethod
    def load(cls, path: Path, dimension: int) -> Graph | None:
        """The graph saved at ``path``, or None if there is none or it is not one of ours."""
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:  # faiss reports a damaged file as a RuntimeError
            log.warning("ignoring the unreadable ANN graph %s (%s); rebuilding it", path, exc)
            return None
        if (
            not isinstance(index, faiss.IndexHNSW)
            or index.d != dimension
            or index.metric_type != faiss.METRIC_INNER_PRODUCT
        ):
            log.warning("ignoring the ANN graph %s: not a %d-d cosine graph", path, dimension)
            return None
        return cls(index)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)  # type: ignore[attr-defined]

    def holds(self, matrix: npt.NDArray[np.float32], n_rows: int) -> bool:
        """Whether this graph was built from these rows: a sample of its stored (fp16) vectors
        equals theirs. Catches a graph of another index or of a namespace id reused after a
        damaged namespace was dropped, whose row numbers mean other vectors."""
        covered = min(self.ntotal, n_rows)
        rows = np.unique(np.linspace(0, covered - 1, num=min(16, covered)).astype(np.int64))
        stored = np.stack([self.index.reconstruct(int(r)) for r in rows])  # type: ignore[attr-defined]
        return bool(np.allclose(stored, matrix[rows], atol=2e-3))

    def clone(self) -> Graph:
        return Graph(faiss.clone_index(self.index))

    def add(self, matrix: npt.NDArray[np.float32], stop: int) -> None:
        """Add rows ``ntotal..stop-1`` of ``matrix`` (their ids are their row numbers)."""
        index = self.index
        for start in range(self.ntotal, stop, _ADD_CHUNK):
            index.add(np.ascontiguousarray(matrix[start : min(stop, start + _ADD_CHUNK)]))  # type: ignore[attr-defined]

    def search(self, q: npt.NDArray[np.float32], k: int, ef: int, bitmap: Bitmap | None) -> Rows:
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(ef, k)
        if bitmap is not None:
            params.sel = bitmap.selector
        _, rows = self.index.search(q.reshape(1, -1), k, params=params)  # type: ignore[attr-defined]
        found: Rows = rows[0][rows[0] >= 0].astype(np.int64)
        return found

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file, fsynced, renamed over ``path``, directory synced."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            faiss.write_index(self.index, str(tmp))
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)


def ann_top(
    graph: Graph,
    matrix: npt.NDArray[np.float32],
    q: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | None,
    top_k: int,
    params: AnnParams,
) -> tuple[Rows, Scores]:
    """Top ``top_k`` rows: graph candidates plus an exact scan of the rows the graph lacks,
    re-scored in fp32. ``mask`` as for ``exact_top``."""
    n = matrix.shape[0]
    covered = min(graph.ntotal, n)
    bitmap = None if mask is None else Bitmap(mask[:covered])
    if bitmap is not None and bitmap.count < params.exact_below * covered:
        # A selective filter: the scan reads only the kept rows, and a graph walk would have to
        # pass through many rejected nodes to find enough of them.
        return exact_top(matrix, q, mask, top_k)
    hits = graph.search(q, max(top_k, params.candidates), params.ef_search, bitmap)
    tail, _ = exact_top(matrix, q, mask, top_k, start=covered)
    return rescore(matrix, q, np.concatenate([hits[hits < covered], tail]), top_k)


class AnnKeeper:
    """One namespace generation's graph: loaded or built, extended, saved; by one job at a time.

    Queries call ``prepare`` under the index's lock and use ``graph`` when there is one; a job
    works on its own copy and swaps it in under the same lock, so a search never meets a graph
    that is being changed.
    """

    def __init__(
        self, path: Path, dimension: int, params: AnnParams, lock: threading.RLock
    ) -> None:
        self.path = path
        self.graph: Graph | None = None
        self.error: str | None = None
        self._dimension = dimension
        self._params = params
        self._lock = lock
        self._busy = False

    @property
    def state(self) -> str:
        if self.graph is not None:
            return "ann"
        return "exact (ann failed)" if self.error else "exact (ann building)"

    def prepare(self, matrix: npt.NDArray[np.float32], n_rows: int) -> None:
        """Start a job if there is no graph yet or the rows it lacks became too many."""
        graph = self.graph
        if self._busy or (self.error is not None and graph is None):
            return
        if graph is not None and n_rows - graph.ntotal <= self._params.tail_rows:
            return
        self._busy = True
        if not self._params.background:
            self._job(graph, matrix, n_rows)
            return
        threading.Thread(
            target=self._job, args=(graph, matrix, n_rows), name="ann-graph", daemon=True
        ).start()

    def _job(self, base: Graph | None, matrix: npt.NDArray[np.float32], n_rows: int) -> None:
        sweep_temporaries(self.path.parent, "ann-*.faiss.*.tmp")
        try:
            if base is not None:
                graph = base.clone()  # searches go on reading ``base`` meanwhile
            else:
                loaded = Graph.load(self.path, self._dimension)
                if loaded is not None and loaded.ntotal and not loaded.holds(matrix, n_rows):
                    log.warning("ignoring the ANN graph %s: not built from these rows", self.path)
                    loaded = None
                graph = loaded or Graph.new(self._dimension, self._params)
                log.info(
                    "ANN graph %s: %d rows loaded, %d to add",
                    self.path,
                    graph.ntotal,
                    max(0, n_rows - graph.ntotal),
                )
            added = n_rows > graph.ntotal
            graph.add(matrix, n_rows)
            with self._lock:
                self.graph = graph
        except (RuntimeError, MemoryError) as exc:  # faiss's errors; the exact scan serves on
            log.error("cannot build the ANN graph %s: %s; serving exact", self.path, exc)
            self.error = str(exc)
            return
        finally:
            with self._lock:
                self._busy = False
        if added or not self.path.exists():
            self._save(graph)

    def _save(self, graph: Graph) -> None:
        try:
            graph.save(self.path)
        except (RuntimeError, OSError) as exc:  # a cache: the next job writes it again
            log.warning("cannot save the ANN graph %s: %s", self.path, exc)
            return
        nsid, gen = self.path.stem.split("-")[1:3]
        for old in self.path.parent.glob(f"ann-{nsid}-*.faiss"):
            if int(old.stem.split("-")[2]) < int(gen):  # a compacted generation's graph
                old.unlink(missing_ok=True)
