"""The embedded vector index: exact cosine top-k over memory-mapped float32 rows, SQLite beside.

Layout of ``path/``: ``index.sqlite`` (WAL) holds one *slot* per stored vector (namespace, row,
id, metadata JSON, removed flag, change sequence) and ``ns-<n>-<gen>.f32`` holds each namespace's
unit vectors as raw float32 rows, append-only until a compaction writes the next generation.
Why this engine, and the figures behind the choice, are in docs/stores-vectors.md.

Durability and isolation, without a custom log:

* an upsert appends its rows to the ``.f32`` file and fsyncs it *before* the SQLite transaction
  that makes those rows live commits (``synchronous=FULL``): acknowledged means on disk, and a
  crash in between leaves only unreferenced bytes past ``next_row``, overwritten next time;
* rows are never rewritten: replacing an id appends a new row and marks the old slot removed, so
  a reader (this process or another) only ever reads rows its SQLite snapshot says are complete;
* every read runs in one SQLite snapshot; if the change counter moved since the last one, the
  slots whose ``seq`` is newer are applied to the loaded namespaces (a new file generation makes
  that namespace reload), so reopening or refreshing never rebuilds the index.
"""

from __future__ import annotations

import json
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
from fashion_search.stores.vectors_matrix import (
    Segment,
    append_rows,
    copy_rows,
    top_rows,
    unit_rows,
)
from fashion_search.types import Filter, Match, Vector, VectorRecord

SCHEMA_VERSION = 1
MAX_TOP_K = 10_000  # the same cap as Pinecone, so both adapters refuse the same requests
_CHUNK = 500  # ids per SQL "IN (...)" statement
# Compact a namespace once more than half its rows (and at least this many) are dead.
COMPACT_MIN_DEAD = 4096
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY, nsid INTEGER NOT NULL UNIQUE, next_row INTEGER NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0, dead INTEGER NOT NULL DEFAULT 0);
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
        self._seq = -1  # the change counter our loaded namespaces reflect
        try:
            self._path.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self._path / "index.sqlite", isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the vector index at {self._path}: {exc}") from exc
        try:
            self._check_meta()
            self._db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def _check_meta(self) -> None:
        """Refuse an index of another schema version or dimension before touching its tables."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(_SCHEMA.split(";")[0])  # the meta table
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
                f" this build reads version {SCHEMA_VERSION}: move that directory away and run "
                "`fashion-search reindex` to rebuild it from the catalog"
            )
        if stored and int(stored["dimension"]) != self._dimension:
            raise StoreError(
                f"the vector index at {self._path} holds {stored['dimension']}-d vectors but the "
                f"model makes {self._dimension}-d ones: move that directory away and run "
                "`fashion-search reindex`",
                field="dimension",
            )

    @property
    def dimension(self) -> int:
        return self._dimension

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading committed state -------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction; loaded namespaces are brought up to it first."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                seq = int(self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0])
                if seq != self._seq:
                    self._apply_changes(seq)
                yield
            finally:
                self._db.execute("COMMIT")

    def _apply_changes(self, seq: int) -> None:
        current: dict[int, Segment] = {}
        for name, nsid, next_row, gen in self._db.execute(
            "SELECT name, nsid, next_row, gen FROM namespaces"
        ).fetchall():
            seg = self._segments.get(name)
            if seg is not None and seg.gen != gen:  # compacted: rows were renumbered
                self._segments[name] = self._load(nsid, next_row, gen)
            elif seg is not None:
                seg.grow(next_row)
                current[nsid] = seg
        if current:
            for nsid, row, removed, metadata in self._db.execute(
                "SELECT nsid, row, removed, metadata FROM slots WHERE seq > ?", (self._seq,)
            ):
                seg = current.get(nsid)
                if seg is not None:
                    seg.set_live(row, not removed)
                    if not removed and seg.columns.fields:
                        seg.columns.add_row(row, json.loads(metadata), seg.n_rows)
        self._seq = seq

    def _file(self, nsid: int, gen: int) -> Path:
        return self._path / f"ns-{nsid}-{gen}.f32"

    def _load(self, nsid: int, next_row: int, gen: int) -> Segment:
        seg = Segment(self._file(nsid, gen), nsid, self._dimension, gen)
        seg.grow(next_row)
        rows = self._db.execute(
            "SELECT row FROM slots WHERE nsid = ? AND removed = 0", (nsid,)
        ).fetchall()
        live_rows = np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))
        seg.live[live_rows] = True
        seg.n_live = len(live_rows)
        return seg

    def _segment(self, namespace: str) -> Segment | None:
        """The namespace as of the open snapshot (call inside ``_snapshot``)."""
        seg = self._segments.get(namespace)
        if seg is None:
            found = self._db.execute(
                "SELECT nsid, next_row, gen FROM namespaces WHERE name = ?", (namespace,)
            ).fetchone()
            if found is None:
                return None
            seg = self._segments[namespace] = self._load(*found)
        return seg

    def _build_columns(self, seg: Segment, fields: set[str]) -> None:
        for field in sorted(fields - seg.columns.fields):
            rows = self._db.execute(
                "SELECT s.row, j.type, j.atom, j.value FROM slots s, json_each(s.metadata) j "
                "WHERE s.nsid = ? AND s.removed = 0 AND j.key = ?",
                (seg.nsid, field),
            ).fetchall()
            seg.columns.build(field, rows, seg.n_rows)

    # -- writing -------------------------------------------------------------------------------

    @contextmanager
    def _writing(self, what: str) -> Iterator[int]:
        """One write transaction under SQLite's write lock; yields its change sequence number."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
                try:
                    row = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
                    seq = int(row[0]) + 1
                    yield seq
                    self._db.execute("UPDATE meta SET value = ? WHERE key='seq'", (str(seq),))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"vector {what} failed: {exc}") from exc

    def _namespace_row(self, namespace: str, *, create: bool) -> tuple[int, int, int, int] | None:
        """``(nsid, next_row, gen, dead)`` of a namespace, created on demand."""
        found = self._db.execute(
            "SELECT nsid, next_row, gen, dead FROM namespaces WHERE name = ?", (namespace,)
        ).fetchone()
        if found is None and create:
            nsid = self._db.execute("SELECT coalesce(max(nsid), -1) + 1 FROM namespaces").fetchone()
            self._db.execute(
                "INSERT INTO namespaces (name, nsid, next_row) VALUES (?, ?, 0)",
                (namespace, nsid[0]),
            )
            return int(nsid[0]), 0, 0, 0
        return (
            None if found is None else (int(found[0]), int(found[1]), int(found[2]), int(found[3]))
        )

    def _mark_removed(self, nsid: int, ids: Sequence[str], seq: int) -> int:
        removed = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            removed += self._db.execute(
                "UPDATE slots SET removed = 1, metadata = NULL, seq = ? WHERE nsid = ? "
                f"AND removed = 0 AND id IN ({','.join('?' * len(chunk))})",
                (seq, nsid, *chunk),
            ).rowcount
        self._db.execute("UPDATE namespaces SET dead = dead + ? WHERE nsid = ?", (removed, nsid))
        return removed

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
            assert found is not None  # created on demand
            nsid, next_row, gen, dead = found
            append_rows(self._file(nsid, gen), next_row, unit)  # on disk before the commit
            dead += self._mark_removed(nsid, ids, seq)
            self._db.executemany(
                "INSERT INTO slots (nsid, row, id, metadata, removed, seq) VALUES (?,?,?,?,0,?)",
                [
                    (nsid, next_row + k, record_id, payload, seq)
                    for k, (record_id, payload) in enumerate(zip(ids, payloads, strict=True))
                ],
            )
            next_row += len(ids)
            self._db.execute("UPDATE namespaces SET next_row = ? WHERE nsid = ?", (next_row, nsid))
        if dead >= COMPACT_MIN_DEAD and 2 * dead > next_row:
            self.compact(namespace=namespace)
        return len(records)

    def compact(self, *, namespace: str = "") -> int:
        """Rewrite the namespace's file without replaced or deleted rows; returns rows freed.

        Readers keep their mapping of the old file (still readable once unlinked) until their
        next snapshot, which sees the new generation and reloads the namespace.
        """
        with self._writing("compaction") as seq:
            found = self._namespace_row(namespace, create=False)
            if found is None or found[3] == 0:
                return 0
            nsid, next_row, gen, dead = found
            rows = self._db.execute(
                "SELECT row FROM slots WHERE nsid = ? AND removed = 0 ORDER BY row", (nsid,)
            ).fetchall()
            live = np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))
            copy_rows(self._file(nsid, gen), self._file(nsid, gen + 1), live, self._dimension)
            self._db.execute("DELETE FROM slots WHERE nsid = ? AND removed = 1", (nsid,))
            # Ascending order never collides: the i-th live row moves down to row i.
            self._db.executemany(
                "UPDATE slots SET row = ?, seq = ? WHERE nsid = ? AND row = ?",
                [(i, seq, nsid, int(r)) for i, r in enumerate(live) if i != r],
            )
            self._db.execute(
                "UPDATE namespaces SET next_row = ?, gen = ?, dead = 0 WHERE nsid = ?",
                (len(live), gen + 1, nsid),
            )
        for old in range(gen + 1):
            self._file(nsid, old).unlink(missing_ok=True)
        return next_row - len(live)

    def delete(self, ids: Sequence[str], *, namespace: str = "") -> None:
        if not ids:
            return
        with self._writing("delete") as seq:
            found = self._namespace_row(namespace, create=False)
            if found is not None:
                self._mark_removed(found[0], list(dict.fromkeys(ids)), seq)

    # -- reading -------------------------------------------------------------------------------

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
        with self._snapshot():
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
        with self._snapshot():
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
                    out[record_id] = VectorRecord(
                        record_id, np.array(seg.matrix[row]), json.loads(metadata)
                    )
        return out

    def count(self, *, namespace: str = "") -> int:
        with self._snapshot():
            seg = self._segment(namespace)
            return 0 if seg is None else seg.n_live

    def namespaces(self) -> list[str]:
        with self._snapshot():
            return [name for (name,) in self._db.execute("SELECT name FROM namespaces")]

    def iter_ids(self, *, namespace: str = "") -> Iterator[str]:
        """Every live id, in id order, read in pages so no snapshot is held across yields."""
        after = ""
        first = True
        while True:
            with self._snapshot():
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
