"""The embedded index's rows on disk and one namespace's mapped matrix of them.

The exact scan over it is ``embedded.scan`` (fp16 copies of the rows: ``embedded.half``); the
approximate index beside it ``embedded.ann``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fashion_search.errors import IndexDamaged, StoreError
from fashion_search.stores.durable import fsync_dir
from fashion_search.stores.embedded.ann import AnnKeeper
from fashion_search.stores.embedded.columns import Columns
from fashion_search.stores.embedded.half import HalfRows


def append_rows(path: Path, first_row: int, rows: npt.NDArray[np.float32]) -> None:
    """Write ``rows`` from row ``first_row`` on and fsync them, before the commit using them."""
    data = rows.tobytes()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.pwrite(fd, data, first_row * rows.shape[1] * 4) != len(data):
            raise StoreError(f"short write to {path} (disk full?)")
        os.fsync(fd)
    finally:
        os.close(fd)
    if first_row == 0:  # maybe a new file: make its directory entry durable too
        fsync_dir(path.parent)


def copy_rows(source: Path, target: Path, rows: npt.NDArray[np.int64], dimension: int) -> None:
    """Write ``source``'s ``rows``, in order, as a new file ``target`` (fsynced)."""
    with open(target, "wb") as out:
        if len(rows):
            shape = (int(rows.max()) + 1, dimension)
            old = np.memmap(source, dtype=np.float32, mode="r", shape=shape)
            for start in range(0, len(rows), 65536):  # bounded memory however large the index
                out.write(np.ascontiguousarray(old[rows[start : start + 65536]]).tobytes())
        out.flush()
        os.fsync(out.fileno())
    fsync_dir(target.parent)


REPAIR = "run `fashion-search reindex` to rebuild it from the catalog"


def segment_problem(path: Path, n_rows: int, dimension: int) -> str | None:
    """What is wrong with a segment file that should hold ``n_rows`` rows, or None.

    A longer file is fine (rows appended by a transaction that never committed); a shorter or
    missing one cannot be mapped: numpy would raise, or reading the pages would kill the process.
    """
    if n_rows <= 0:
        return None
    need = n_rows * dimension * 4
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{path.name} is missing (it should hold {n_rows} rows)"
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror})"
    if size < need:
        return (
            f"{path.name} holds {size // (dimension * 4)} of {n_rows} rows "
            f"({size} of {need} bytes; a disk that filled up or a copy cut short?)"
        )
    return None


class Segment:
    """One namespace in memory: which rows are live, the mapped matrix, built filter columns."""

    def __init__(self, path: Path, nsid: int, dimension: int, gen: int = 0) -> None:
        self.path = path
        self.nsid = nsid
        self.gen = gen  # the file generation; compaction starts a new one
        self.dimension = dimension
        self.n_rows = 0
        self.live = np.zeros(0, dtype=bool)
        self.n_live = 0
        self.matrix: npt.NDArray[np.float32] = np.zeros((0, dimension), dtype=np.float32)
        self.columns = Columns()
        self.ann: AnnKeeper | None = None  # the approximate graph, once the namespace is big
        self.half: HalfRows | None = None  # fp16 copies of the rows, when turned on

    def grow(self, n_rows: int) -> None:
        if n_rows <= self.n_rows:
            return
        if n_rows > len(self.live):
            live = np.zeros(max(n_rows, 2 * len(self.live), 1024), dtype=bool)
            live[: self.n_rows] = self.live[: self.n_rows]
            self.live = live
        problem = segment_problem(self.path, n_rows, self.dimension)
        if problem is not None:
            raise IndexDamaged(f"the vector index is damaged: {problem}; {REPAIR}")
        # Map only rows a committed transaction made live: they were fsynced before it.
        self.matrix = np.asarray(
            np.memmap(self.path, dtype=np.float32, mode="r", shape=(n_rows, self.dimension))
        )
        self.n_rows = n_rows

    def set_live(self, row: int, alive: bool) -> None:
        if self.live[row] != alive:
            self.live[row] = alive
            self.n_live += 1 if alive else -1
