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

from fashion_search.errors import InvalidInput
from fashion_search.stores.embedded.ann import AnnKeeper, AnnParams, ann_top
from fashion_search.stores.embedded.matrix import Segment, append_rows, copy_rows, unit_rows
from fashion_search.stores.embedded.scan import exact_top
from fashion_search.stores.embedded.storage import CHUNK, SCHEMA_VERSION, IndexStorage
from fashion_search.stores.filters import (
    compile_filter,
    fields_of,
    validate_metadata,
    validate_record_id,
)
from fashion_search.types import Filter, Match, Vector, VectorRecord

__all__ = ["COMPACT_MIN_DEAD", "MAX_TOP_K", "SCHEMA_VERSION", "AnnParams", "EmbeddedVectorIndex"]

MAX_TOP_K = 10_000  # the same cap as Pinecone, so both adapters refuse the same requests
# Compact a namespace once more than half its rows (and at least this many) are dead.
COMPACT_MIN_DEAD = 4096


class EmbeddedVectorIndex(IndexStorage):
    """A persistent cosine index on one machine, safe for one writer and many readers.

    Stored vectors are L2-normalised: ``fetch`` returns the unit vector of what was upserted.
    Exact top-k below ``ann.min_vectors`` live vectors a namespace, approximate above (see
    ``embedded.ann``). ``filter_fields``: metadata fields whose filter columns are built when a
    namespace loads rather than in the first query filtering on them.
    """

    def __init__(
        self,
        path: Path,
        *,
        dimension: int,
        ann: AnnParams | None = None,
        filter_fields: Collection[str] = (),
        drop_damaged: bool = False,
    ) -> None:
        super().__init__(path, dimension=dimension, drop_damaged=drop_damaged)
        self.ann = ann or AnnParams()  # public: replace it (say ef_search) to tune at run time
        self._filter_fields = frozenset(filter_fields)

    @property
    def dimension(self) -> int:
        return self._dimension

    # -- writing -------------------------------------------------------------------------------

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
            (self._path / f"ann-{nsid}-{old}.faiss").unlink(missing_ok=True)  # ids were rows
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
            keeper = self._keeper(seg)
            graph = None if keeper is None else keeper.graph
            if graph is None:
                rows, scores = exact_top(seg.matrix, q, mask, top_k)
            else:
                rows, scores = ann_top(graph, seg.matrix, q, mask, top_k, self.ann)
            return self._matches(seg, rows, scores, include_metadata)

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
            for start in range(0, len(unique), CHUNK):
                chunk = unique[start : start + CHUNK]
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
