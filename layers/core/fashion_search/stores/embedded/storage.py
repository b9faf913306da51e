"""The embedded index's on-disk state: the SQLite slot table, segment files, snapshots, writes.

``IndexStorage`` opens ``path/`` (layout and durability argument in ``vector_index``), checks
its schema version and dimension, and gives the adapter one read snapshot (``_snapshot``, which
first brings loaded namespaces up to date) and one write transaction (``_writing``) at a time.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fashion_search.errors import IndexDamaged, InvalidInput, StoreError
from fashion_search.stores.disk import disk_full, is_disk_full
from fashion_search.stores.embedded.matrix import REPAIR, Segment, segment_problem

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CHUNK = 500  # ids per SQL "IN (...)" statement
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


class IndexStorage:
    """SQLite slots and ``.f32`` segment files of one index directory, safe for one writer.

    Opening checks every segment file against the slot table and raises ``IndexDamaged`` for one
    cut short or gone; ``drop_damaged=True`` (what ``reindex`` opens with) instead empties those
    namespaces, recorded in ``dropped``, so the rebuild starts from a sound index.
    """

    def __init__(self, path: Path, *, dimension: int, drop_damaged: bool = False) -> None:
        if dimension < 1:
            raise InvalidInput(f"dimension must be positive, got {dimension}", field="dimension")
        self._path = Path(path)
        self._dimension = dimension
        self._lock = threading.RLock()
        self._segments: dict[str, Segment] = {}
        self._seq = -1  # the change counter our loaded namespaces reflect
        self.dropped: dict[str, int] = {}  # namespace -> rows dropped as damaged
        self._filter_fields: frozenset[str] = frozenset()  # columns built when a namespace loads
        try:
            self._path.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self._path / "index.sqlite", isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
        except (sqlite3.Error, OSError) as exc:
            if is_disk_full(exc):
                raise disk_full(self._path, exc) from exc
            raise StoreError(f"cannot open the vector index at {self._path}: {exc}") from exc
        try:
            self._check_meta()
            self._db.executescript(_SCHEMA)
            self._check_segments(drop=drop_damaged)
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

    def _check_segments(self, *, drop: bool) -> None:
        """A stat per namespace: the cheap check that a segment holds its committed rows."""
        damaged = [
            (name, nsid, next_row, problem)
            for name, nsid, next_row, gen in self._db.execute(
                "SELECT name, nsid, next_row, gen FROM namespaces"
            ).fetchall()
            if (problem := segment_problem(self._file(nsid, gen), next_row, self._dimension))
        ]
        if not damaged:
            return
        if not drop:
            problems = "; ".join(p for *_, p in damaged)
            raise IndexDamaged(f"the vector index at {self._path} is damaged: {problems}; {REPAIR}")
        with self._writing("drop of damaged namespaces") as seq:
            del seq  # the bump alone tells other processes to reload
            for name, nsid, _, _ in damaged:
                (live,) = self._db.execute(
                    "SELECT count(*) FROM slots WHERE nsid = ? AND removed = 0", (nsid,)
                ).fetchone()
                self._db.execute("DELETE FROM slots WHERE nsid = ?", (nsid,))
                self._db.execute("DELETE FROM namespaces WHERE nsid = ?", (nsid,))
                self.dropped[name] = int(live)
        for name, nsid, _, problem in damaged:
            for stale in self._path.glob(f"ns-{nsid}-*.f32"):
                stale.unlink(missing_ok=True)
            self._unlink_derived(nsid)
            log.warning("vector index namespace %r dropped for a rebuild: %s", name, problem)

    def version(self, *, namespace: str = "") -> str:
        """The committed change counter: every upsert, delete or compaction moves it (for any
        namespace: one counter is cheaper than one per namespace, and only ever over-counts)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        return f"seq-{row[0]}"

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
        self._build_columns(seg, set(self._filter_fields))  # not inside the first query
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
        missing = fields - seg.columns.fields
        if missing:  # one pass over the metadata, however many fields
            rows = self._db.execute(
                "SELECT row, metadata FROM slots WHERE nsid = ? AND removed = 0", (seg.nsid,)
            )
            seg.columns.build(missing, rows, seg.n_rows)

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
                    # SQLite has already rolled back after SQLITE_FULL; a second ROLLBACK would
                    # replace the real error with "cannot rollback - no transaction is active".
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                if is_disk_full(exc):
                    raise disk_full(self._path, exc) from exc
                raise StoreError(f"vector {what} failed: {exc}") from exc

    def _namespace_row(self, namespace: str, *, create: bool) -> tuple[int, int, int, int] | None:
        """``(nsid, next_row, gen, dead)`` of a namespace, created on demand."""
        found = self._db.execute(
            "SELECT nsid, next_row, gen, dead FROM namespaces WHERE name = ?", (namespace,)
        ).fetchone()
        if found is None and create:
            nsid = self._db.execute("SELECT coalesce(max(nsid), -1) + 1 FROM namespaces").fetchone()
            self._unlink_derived(int(nsid[0]))  # left by a dropped namespace of that id
            self._db.execute(
                "INSERT INTO namespaces (name, nsid, next_row) VALUES (?, ?, 0)",
                (namespace, nsid[0]),
            )
            return int(nsid[0]), 0, 0, 0
        return (
            None if found is None else (int(found[0]), int(found[1]), int(found[2]), int(found[3]))
        )

    def _unlink_derived(self, nsid: int) -> None:
        """Delete the graphs and fp16 rows of namespace id ``nsid`` (rebuilt from its rows)."""
        for stale in [*self._path.glob(f"ann-{nsid}-*"), *self._path.glob(f"half-{nsid}-*")]:
            stale.unlink(missing_ok=True)

    def _mark_removed(self, nsid: int, ids: Sequence[str], seq: int) -> int:
        removed = 0
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            removed += self._db.execute(
                "UPDATE slots SET removed = 1, metadata = NULL, seq = ? WHERE nsid = ? "
                f"AND removed = 0 AND id IN ({','.join('?' * len(chunk))})",
                (seq, nsid, *chunk),
            ).rowcount
        self._db.execute("UPDATE namespaces SET dead = dead + ? WHERE nsid = ?", (removed, nsid))
        return removed
