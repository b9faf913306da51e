"""The embedded vector index: cosine top-k over memory-mapped float32 rows, SQLite beside.

Exact below ``AnnParams.min_vectors`` live vectors (``embedded.scan``); above it an HNSW graph
answers, its candidates re-scored exactly (``embedded.ann``).

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
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fashion_search.stores.embedded.ann import AnnKeeper, AnnParams, ann_top
from fashion_search.stores.embedded.half import HalfParams, HalfRows
from fashion_search.stores.embedded.matrix import Segment, append_rows, copy_rows
from fashion_search.stores.embedded.scan import exact_top
from fashion_search.stores.embedded.storage import CHUNK, SCHEMA_VERSION, IndexStorage
from fashion_search.stores.filters import fields_of
from fashion_search.stores.vectors import CheckedRecord, VectorIndex, VectorQuery
from fashion_search.types import Match, VectorRecord

__all__ = ["COMPACT_MIN_DEAD", "SCHEMA_VERSION", "AnnParams", "EmbeddedVectorIndex", "HalfParams"]

# Compact a namespace once more than half its rows (and at least this many) are dead.
COMPACT_MIN_DEAD = 4096


class EmbeddedVectorIndex(IndexStorage, VectorIndex):
    """A persistent cosine index on one machine, safe for one writer and many readers.

    Stored vectors are L2-normalised: ``fetch`` returns the unit vector of what was upserted.
    Exact top-k below ``ann.min_vectors`` live vectors a namespace, approximate above (see
    ``embedded.ann``). ``filter_fields``: metadata fields whose filter columns are built when a
    namespace loads rather than in the first query filtering on them. ``half``: the exact scan
    reads fp16 copies of the rows (``embedded.half``), same results.
    """

    # Not a limit of this engine: the same cap as Pinecone's, so a request one home answers is
    # not refused by the other. Fetch and upsert have no request limits here (one transaction).
    max_top_k = 10_000

    def __init__(
        self,
        path: Path,
        *,
        dimension: int,
        ann: AnnParams | None = None,
        filter_fields: Collection[str] = (),
        half: HalfParams | None = None,
        drop_damaged: bool = False,
    ) -> None:
        super().__init__(path, dimension=dimension, drop_damaged=drop_damaged)
        self.ann = ann or AnnParams()  # public: replace it (say ef_search) to tune at run time
        self.half = half  # None: the exact scan reads the float32 rows only
        self._filter_fields = frozenset(filter_fields)

    @property
    def dimension(self) -> int:
        return self._dimension

    # -- writing -------------------------------------------------------------------------------

    def _upsert(self, records: Sequence[CheckedRecord], namespace: str) -> int:
        ids = [r.id for r in records]
        unit = np.stack([r.values for r in records])
        payloads = [r.metadata_json for r in records]
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
        return len(ids)

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
            (self._path / f"ann-{nsid}-{old}.faiss").unlink(missing_ok=True)  # ids were rows
            (self._path / f"half-{nsid}-{old}.f16").unlink(missing_ok=True)
        return next_row - len(live)

    def _delete(self, ids: Sequence[str], namespace: str) -> None:
        with self._writing("delete") as seq:
            found = self._namespace_row(namespace, create=False)
            if found is not None:
                self._mark_removed(found[0], ids, seq)

    # -- reading -------------------------------------------------------------------------------

    def _query(self, query: VectorQuery) -> list[Match]:
        node, q, top_k = query.node, query.vector, query.top_k
        with self._snapshot():
            seg = self._segment(query.namespace)
            if seg is None or seg.n_live == 0:
                return []
            n = seg.n_rows
            mask: npt.NDArray[np.bool_] | None = None
            if node is not None:
                self._build_columns(seg, fields_of(node))
                mask = seg.columns.evaluate(node, n) & seg.live[:n]
            elif seg.n_live < n:
                mask = seg.live[:n]
            keeper = self._keeper(seg)
            graph = None if keeper is None else keeper.graph
            if graph is None:
                half = self._half_rows(seg)
                rows, scores = exact_top(seg.matrix, q, mask, top_k, half=half)
            else:
                rows, scores = ann_top(graph, seg.matrix, q, mask, top_k, self.ann)
            return self._matches(seg, rows, scores, query.include_metadata)

    def engine(self, *, namespace: str = "") -> str:
        """What answers queries now: ``exact``, ``ann``, or ``exact (ann building)`` while the
        graph of a namespace over the threshold is being built (``exact (ann failed)``)."""
        with self._snapshot():
            seg = self._segment(namespace)
            keeper = None if seg is None else self._keeper(seg)
            return "exact" if keeper is None else keeper.state

    def _keeper(self, seg: Segment) -> AnnKeeper | None:
        """The namespace's graph keeper once it is over the threshold (a job started if due)."""
        threshold = self.ann.min_vectors
        if seg.ann is None and (threshold is None or seg.n_live < threshold):
            return None
        if seg.ann is None:
            path = self._path / f"ann-{seg.nsid}-{seg.gen}.faiss"
            seg.ann = AnnKeeper(path, self._dimension, self.ann, self._lock)
        seg.ann.prepare(seg.matrix, seg.n_rows)
        return seg.ann

    def _half_rows(self, seg: Segment) -> npt.NDArray[np.float16] | None:
        """The namespace's mapped fp16 rows when turned on and written (a job started if due)."""
        if self.half is None:
            return None
        if seg.half is None:
            path = self._path / f"half-{seg.nsid}-{seg.gen}.f16"
            seg.half = HalfRows(path, self._dimension, seg.nsid, seg.gen, self._lock, self.half)
        seg.half.prepare(seg.matrix, seg.n_rows)
        return seg.half.rows

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

    def _fetch(self, ids: Sequence[str], namespace: str) -> dict[str, VectorRecord]:
        out: dict[str, VectorRecord] = {}
        with self._snapshot():
            seg = self._segment(namespace)
            if seg is None:
                return out
            for start in range(0, len(ids), CHUNK):  # SQLite's bound-parameter limit
                chunk = ids[start : start + CHUNK]
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
