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
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fashion_search.errors import InvalidInput, StoreError
from fashion_search.stores.filters import (
    compile_filter,
    fields_of,
    validate_metadata,
    validate_record_id,
)
from fashion_search.stores.vectors_matrix import Segment, top_rows, unit_rows
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
        self._segments: dict[str, Segment] = {}
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
        self._db.execute("BEGIN")
        try:
            self._apply_changes()
        finally:
            self._db.execute("COMMIT")

    def _apply_changes(self) -> None:
        """Bring every loaded segment to the open read transaction's snapshot."""
        by_nsid = {seg.nsid: seg for seg in self._segments.values()}
        if by_nsid:
            for nsid, next_row in self._db.execute("SELECT nsid, next_row FROM namespaces"):
                if nsid in by_nsid:
                    by_nsid[nsid].grow(next_row)
            changed = self._db.execute(
                "SELECT nsid, row, removed, metadata FROM slots WHERE seq > ?", (self._seq,)
            ).fetchall()
            for nsid, row, removed, metadata in changed:
                seg = by_nsid.get(nsid)
                if seg is None:
                    continue
                seg.set_live(row, not removed)
                if not removed and seg.columns.fields:
                    seg.columns.add_row(row, json.loads(metadata), seg.n_rows)
        self._seq = int(self._db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])

    def _segment(self, namespace: str) -> Segment | None:
        self._refresh()
        seg = self._segments.get(namespace)
        if seg is not None:
            return seg
        self._db.execute("BEGIN")
        try:
            # One snapshot for the loaded segments and the new one, so none misses a commit.
            self._apply_changes()
            found = self._db.execute(
                "SELECT nsid, next_row FROM namespaces WHERE name = ?", (namespace,)
            ).fetchone()
            if found is None:
                return None
            nsid, next_row = found
            rows = self._db.execute(
                "SELECT row FROM slots WHERE nsid = ? AND removed = 0", (nsid,)
            ).fetchall()
            seg = Segment(self._path / f"ns-{nsid}.f32", nsid, self._dimension)
            seg.grow(next_row)
            live_rows = np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))
            seg.live[live_rows] = True
            seg.n_live = len(live_rows)
            self._segments[namespace] = seg
        finally:
            self._db.execute("COMMIT")
        return seg

    def _build_columns(self, seg: Segment, fields: set[str]) -> None:
        for field in sorted(fields - seg.columns.fields):
            rows = self._db.execute(
                "SELECT s.row, j.type, j.atom, j.value FROM slots s, json_each(s.metadata) j "
                "WHERE s.nsid = ? AND s.removed = 0 AND j.key = ?",
                (seg.nsid, field),
            ).fetchall()
            seg.columns.build(field, rows, seg.n_rows)

    # -- the port ----------------------------------------------------------------------------

    @contextmanager
    def _writing(self, what: str) -> Iterator[int]:
        """One write transaction under SQLite's write lock; yields its change sequence number."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
                try:
                    seq = int(
                        self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]
                    )
                    yield seq + 1
                    self._db.execute("UPDATE meta SET value = ? WHERE key='seq'", (str(seq + 1),))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"vector {what} failed: {exc}") from exc
            self._refresh(force=True)

    def _namespace_row(self, namespace: str, *, create: bool) -> tuple[int, int] | None:
        found = self._db.execute(
            "SELECT nsid, next_row FROM namespaces WHERE name = ?", (namespace,)
        ).fetchone()
        if found is None and create:
            nsid = self._db.execute("SELECT coalesce(max(nsid), -1) + 1 FROM namespaces").fetchone()
            self._db.execute("INSERT INTO namespaces VALUES (?, ?, 0)", (namespace, nsid[0]))
            return int(nsid[0]), 0
        return None if found is None else (int(found[0]), int(found[1]))

    def upsert(self, records: Sequence[VectorRecord], *, namespace: str = "") -> int:
        latest: dict[str, VectorRecord] = {}
        for record in records:  # the last write of an id in one batch wins, as in Pinecone
            latest[validate_record_id(record.id)] = record
        if not latest:
            return 0
        ids = list(latest)
        unit = unit_rows([latest[i].values for i in ids], self._dimension, ids)
        payloads = [validate_metadata(latest[i].metadata, record_id=i) for i in ids]
        with self._writing("upsert") as seq:
            found = self._namespace_row(namespace, create=True)
            assert found is not None
            nsid, next_row = found
            fd = os.open(self._path / f"ns-{nsid}.f32", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, unit.tobytes(), next_row * self._dimension * 4)
                os.fsync(fd)  # rows on disk before the commit that makes them live
            finally:
                os.close(fd)
            self._mark_removed(nsid, ids, seq)
            self._db.executemany(
                "INSERT INTO slots (nsid, row, id, metadata, removed, seq) VALUES (?,?,?,?,0,?)",
                [
                    (nsid, next_row + k, i, latest_json, seq)
                    for k, (i, latest_json) in enumerate(zip(ids, payloads, strict=True))
                ],
            )
            self._db.execute(
                "UPDATE namespaces SET next_row = ? WHERE nsid = ?", (next_row + len(ids), nsid)
            )
        return len(records)

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
        node = compile_filter(filter) if filter else None
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be 1..{MAX_TOP_K}, got {top_k}", field="top_k")
        q = unit_rows([vector], self._dimension, ["query"])[0]
        with self._lock:
            seg = self._segment(namespace)
            if seg is None or seg.n_live == 0:
                return []
            n = seg.n_rows
            mask: npt.NDArray[np.bool_] | None = None
            if node is not None:
                self._build_columns(seg, fields_of(node))
                mask = seg.columns.evaluate(node, n) & seg.live[:n]
            elif seg.n_live < n:
                mask = seg.live[:n]
            rows, scores = top_rows(seg.matrix, q, mask, top_k)
            return self._matches(seg, rows, scores, include_metadata)

    def _matches(
        self,
        seg: Segment,
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
        with self._writing("delete") as seq:
            found = self._namespace_row(namespace, create=False)
            if found is not None:
                self._mark_removed(found[0], list(dict.fromkeys(ids)), seq)

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
