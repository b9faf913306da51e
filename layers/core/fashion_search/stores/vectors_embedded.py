"""The embedded vector index: exact cosine top-k over memory-mapped float32 rows, SQLite beside.

Layout of ``path/``: ``index.sqlite`` (WAL) holds one *slot* per stored vector (namespace, row,
id, metadata JSON, removed flag, change sequence) and ``ns-<n>.f32`` holds each namespace's unit
vectors as raw float32 rows, append-only. Why this engine, and the figures behind the choice,
are in docs/stores-vectors.md.

Durability and isolation, without a custom log:

* an upsert appends its rows to the ``.f32`` file and fsyncs it *before* the SQLite transaction
  that makes those rows live commits (``synchronous=FULL``): acknowledged means on disk, and a
  crash in between leaves only unreferenced bytes past ``next_row``, overwritten next time;
* rows are never rewritten: replacing an id appends a new row and marks the old slot removed, so
  a reader (this process or another) only ever reads rows its SQLite snapshot says are complete;
* other processes' commits are noticed through ``PRAGMA data_version`` and applied incrementally
  (slots whose ``seq`` is newer), so reopening or refreshing never rebuilds the index.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fashion_search.errors import InvalidInput, StoreError
from fashion_search.stores.filters import (
    Columns,
    compile_filter,
    fields_of,
    validate_metadata,
    validate_record_id,
)
from fashion_search.types import Filter, Match, Vector, VectorRecord

SCHEMA_VERSION = 1
MAX_TOP_K = 10_000  # the same cap as Pinecone, so both adapters refuse the same requests
_CHUNK = 500  # ids per SQL "IN (...)" statement
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY, nsid INTEGER NOT NULL UNIQUE, next_row INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS slots (
    nsid INTEGER NOT NULL, row INTEGER NOT NULL, id TEXT NOT NULL, metadata TEXT,
    removed INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL, PRIMARY KEY (nsid, row));
CREATE UNIQUE INDEX IF NOT EXISTS live_ids ON slots (nsid, id) WHERE removed = 0;
CREATE INDEX IF NOT EXISTS slots_seq ON slots (seq);
"""


def _unit_rows(vectors: Sequence[Vector], dimension: int, ids: Sequence[str]) -> npt.NDArray[Any]:
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


class _Segment:
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


class EmbeddedVectorIndex:
    """A persistent, exact cosine index on one machine, safe for one writer and many readers.

    Stored vectors are L2-normalised: ``fetch`` returns the unit vector of what was upserted.
    """

    def __init__(self, path: Path, *, dimension: int) -> None:
        if dimension < 1:
            raise InvalidInput(f"dimension must be positive, got {dimension}", field="dimension")
        self._path = Path(path)
        self._dimension = dimension
        self._lock = threading.RLock()
        self._segments: dict[str, _Segment] = {}
        self._seq = 0
        self._data_version = -1
        try:
            self._path.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self._path / "index.sqlite", isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
            self._check_meta()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the vector index at {self._path}: {exc}") from exc

    def _check_meta(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if not stored:
                self._db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("dimension", str(self._dimension)),
                        ("seq", "0"),
                    ],
                )
        finally:
            self._db.execute("COMMIT")
        if stored and int(stored["schema_version"]) != SCHEMA_VERSION:
            raise StoreError(
                f"the vector index at {self._path} has schema version {stored['schema_version']};"
                f" this build reads version {SCHEMA_VERSION}: rebuild it with `reindex`"
            )
        if stored and int(stored["dimension"]) != self._dimension:
            raise StoreError(
                f"the vector index at {self._path} holds {stored['dimension']}-d vectors but the "
                f"model makes {self._dimension}-d ones: use another data directory or reindex",
                field="dimension",
            )

    @property
    def dimension(self) -> int:
        return self._dimension

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading committed state -------------------------------------------------------------

    def _refresh(self, *, force: bool = False) -> None:
        """Apply other writers' commits (and, with ``force``, our own) to the loaded segments."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version and not force:
            return
        self._data_version = version
        if not self._segments:
            return
        self._db.execute("BEGIN")
        try:
            by_nsid = {seg.nsid: seg for seg in self._segments.values()}
            for nsid, next_row in self._db.execute("SELECT nsid, next_row FROM namespaces"):
                if nsid in by_nsid:
                    by_nsid[nsid].grow(next_row)
            changed = self._db.execute(
                "SELECT nsid, row, removed, metadata, seq FROM slots WHERE seq > ?", (self._seq,)
            ).fetchall()
        finally:
            self._db.execute("COMMIT")
        for nsid, row, removed, metadata, seq in changed:
            self._seq = max(self._seq, seq)
            seg = by_nsid.get(nsid)
            if seg is None:
                continue
            seg.set_live(row, not removed)
            if not removed and seg.columns.fields:
                seg.columns.add_row(row, json.loads(metadata), seg.n_rows)

    def _segment(self, namespace: str) -> _Segment | None:
        self._refresh()
        seg = self._segments.get(namespace)
        if seg is not None:
            return seg
        self._db.execute("BEGIN")
        try:
            found = self._db.execute(
                "SELECT nsid, next_row FROM namespaces WHERE name = ?", (namespace,)
            ).fetchone()
            if found is None:
                return None
            nsid, next_row = found
            rows = self._db.execute(
                "SELECT row FROM slots WHERE nsid = ? AND removed = 0", (nsid,)
            ).fetchall()
            seq = self._db.execute("SELECT max(seq) FROM slots").fetchone()[0] or 0
        finally:
            self._db.execute("COMMIT")
        seg = _Segment(self._path / f"ns-{nsid}.f32", nsid, self._dimension)
        seg.grow(next_row)
        live_rows = np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))
        seg.live[live_rows] = True
        seg.n_live = len(live_rows)
        # Other segments must also be current as of this snapshot before _seq moves past it.
        self._refresh(force=True)
        self._segments[namespace] = seg
        self._seq = max(self._seq, seq)
        return seg

    def _build_columns(self, seg: _Segment, fields: set[str]) -> None:
        for field in sorted(fields - seg.columns.fields):
            rows = self._db.execute(
                "SELECT s.row, j.type, j.atom, j.value FROM slots s, json_each(s.metadata) j "
                "WHERE s.nsid = ? AND s.removed = 0 AND j.key = ?",
                (seg.nsid, field),
            ).fetchall()
            seg.columns.build(field, rows, seg.n_rows)

    # -- the port ----------------------------------------------------------------------------

    def upsert(self, records: Sequence[VectorRecord], *, namespace: str = "") -> int:
        latest: dict[str, VectorRecord] = {}
        for record in records:  # the last write of an id in one batch wins, as in Pinecone
            latest[validate_record_id(record.id)] = record
        if not latest:
            return 0
        ids = list(latest)
        unit = _unit_rows([latest[i].values for i in ids], self._dimension, ids)
        payloads = [validate_metadata(latest[i].metadata, record_id=i) for i in ids]
        with self._lock:
            try:
                self._write(namespace, ids, unit, payloads)
            except sqlite3.Error as exc:
                raise StoreError(f"vector upsert failed: {exc}") from exc
            self._refresh(force=True)
        return len(records)

    def _write(
        self, namespace: str, ids: list[str], unit: npt.NDArray[Any], payloads: list[str]
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # the write lock: one writer appends at a time
        try:
            found = db.execute(
                "SELECT nsid, next_row FROM namespaces WHERE name = ?", (namespace,)
            ).fetchone()
            if found is None:
                nsid = db.execute("SELECT coalesce(max(nsid), -1) + 1 FROM namespaces").fetchone()[
                    0
                ]
                next_row = 0
                db.execute("INSERT INTO namespaces VALUES (?, ?, 0)", (namespace, nsid))
            else:
                nsid, next_row = found
            fd = os.open(self._path / f"ns-{nsid}.f32", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, unit.tobytes(), next_row * self._dimension * 4)
                os.fsync(fd)  # rows on disk before the commit that makes them live
            finally:
                os.close(fd)
            seq = int(db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]) + 1
            self._mark_removed(nsid, ids, seq)
            db.executemany(
                "INSERT INTO slots (nsid, row, id, metadata, removed, seq) VALUES (?,?,?,?,0,?)",
                [
                    (nsid, next_row + k, i, p, seq)
                    for k, (i, p) in enumerate(zip(ids, payloads, strict=True))
                ],
            )
            db.execute(
                "UPDATE namespaces SET next_row = ? WHERE nsid = ?", (next_row + len(ids), nsid)
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (str(seq),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _mark_removed(self, nsid: int, ids: Sequence[str], seq: int) -> None:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            self._db.execute(
                "UPDATE slots SET removed = 1, metadata = NULL, seq = ? WHERE nsid = ? "
                f"AND removed = 0 AND id IN ({','.join('?' * len(chunk))})",
                (seq, nsid, *chunk),
            )

    def query(
        self,
        vector: Vector,
        *,
        top_k: int,
        filter: Filter | None = None,
        include_metadata: bool = True,
        namespace: str = "",
    ) -> list[Match]:
        node = compile_filter(filter)
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be 1..{MAX_TOP_K}, got {top_k}", field="top_k")
        q = _unit_rows([vector], self._dimension, ["query"])[0]
        with self._lock:
            seg = self._segment(namespace)
            if seg is None or seg.n_live == 0:
                return []
            n = seg.n_rows
            mask: npt.NDArray[np.bool_] | None = None
            if filter:
                self._build_columns(seg, fields_of(node))
                mask = seg.columns.evaluate(node, n) & seg.live[:n]
            elif seg.n_live < n:
                mask = seg.live[:n]
            rows, scores = _top_rows(seg.matrix, q, mask, top_k)
            return self._matches(seg, rows, scores, include_metadata)

    def _matches(
        self,
        seg: _Segment,
        rows: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float32],
        include_metadata: bool,
    ) -> list[Match]:
        if len(rows) == 0:
            return []
        row_list = [int(r) for r in rows]
        column = "metadata" if include_metadata else "NULL"
        found = {
            row: (record_id, metadata)
            for row, record_id, metadata in self._db.execute(
                f"SELECT row, id, {column} FROM slots WHERE nsid = ? "
                f"AND row IN ({','.join('?' * len(row_list))})",
                (seg.nsid, *row_list),
            )
        }
        return [
            Match(
                id=found[row][0],
                score=float(score),
                metadata=json.loads(found[row][1]) if include_metadata else {},
            )
            for row, score in zip(row_list, scores, strict=True)
        ]

    def fetch(self, ids: Sequence[str], *, namespace: str = "") -> dict[str, VectorRecord]:
        out: dict[str, VectorRecord] = {}
        with self._lock:
            seg = self._segment(namespace)
            if seg is None:
                return out
            unique = list(dict.fromkeys(ids))
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                for record_id, row, metadata in self._db.execute(
                    "SELECT id, row, metadata FROM slots WHERE nsid = ? AND removed = 0 "
                    f"AND id IN ({','.join('?' * len(chunk))})",
                    (seg.nsid, *chunk),
                ):
                    seg.grow(row + 1)  # a commit newer than our last refresh
                    out[record_id] = VectorRecord(
                        record_id, np.array(seg.matrix[row]), json.loads(metadata)
                    )
        return out

    def delete(self, ids: Sequence[str], *, namespace: str = "") -> None:
        if not ids:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    found = self._db.execute(
                        "SELECT nsid FROM namespaces WHERE name = ?", (namespace,)
                    ).fetchone()
                    if found is not None:
                        seq = (
                            int(
                                self._db.execute(
                                    "SELECT value FROM meta WHERE key='seq'"
                                ).fetchone()[0]
                            )
                            + 1
                        )
                        self._mark_removed(found[0], list(dict.fromkeys(ids)), seq)
                        self._db.execute("UPDATE meta SET value = ? WHERE key='seq'", (str(seq),))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"vector delete failed: {exc}") from exc
            self._refresh(force=True)

    def count(self, *, namespace: str = "") -> int:
        with self._lock:
            seg = self._segment(namespace)
            return 0 if seg is None else seg.n_live

    def namespaces(self) -> list[str]:
        with self._lock:
            return [name for (name,) in self._db.execute("SELECT name FROM namespaces")]

    def iter_ids(self, *, namespace: str = "") -> Iterator[str]:
        """Every live id, in id order, read in pages so no snapshot is held across yields."""
        after = ""
        first = True
        while True:
            with self._lock:
                page = [
                    record_id
                    for (record_id,) in self._db.execute(
                        "SELECT s.id FROM slots s JOIN namespaces n ON s.nsid = n.nsid "
                        "WHERE n.name = ? AND s.removed = 0 AND (? OR s.id > ?) "
                        "ORDER BY s.id LIMIT 1000",
                        (namespace, first, after),
                    )
                ]
            yield from page
            if len(page) < 1000:
                return
            after, first = page[-1], False


def _top_rows(
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
