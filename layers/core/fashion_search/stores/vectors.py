"""The vector index port. Adapters: ``embedded.vector_index`` (one machine) and ``pinecone_index``.

``VectorIndex`` is a base class in the manner of Powertools' parameter providers (their
``BaseProvider.get()`` caches and transforms, each provider only implements ``_get``): the public
methods own the contract, the adapters implement the private ``_methods``. Before any adapter
code runs, the port

* validates: ids, vector dimension and values, metadata (Pinecone's rules, for every home),
  sparse values, filters (``InvalidFilter``), ``top_k`` and ``alpha``, so a bad input gets the
  same named error from every adapter and never costs a round trip or half a batch;
* de-duplicates: an id given twice in one call is written, fetched or deleted once (the last
  write of an id wins, as in Pinecone);
* splits into requests by the limits the adapter declares as class attributes
  (``max_top_k``, ``max_ids``, ``max_upsert_records``, ``max_upsert_bytes``), so callers never
  know a vendor's limits: ``delete`` of 2,500 ids is one call for them, three requests to
  Pinecone.

Adapters receive unit-length float32 vectors (``CheckedRecord``, ``VectorQuery``).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from fashion_search.errors import InvalidInput
from fashion_search.stores.filters import (
    Node,
    compile_filter,
    validate_metadata,
    validate_record_id,
)
from fashion_search.stores.port import Port
from fashion_search.types import Filter, Match, Metadata, SparseVector, Vector, VectorRecord

Unit = npt.NDArray[np.float32]

# Bounds of one record's JSON on the wire, so a batch is cut under a byte limit without encoding
# it twice: a float64 is at most 24 characters ("-1.2345678901234567e-308") plus a comma; a
# sparse entry (uint32 index and value) at most 36; plus the record's and the request's keys.
_FLOAT_CHARS = 25
_SPARSE_CHARS = 36
_RECORD_KEYS, _REQUEST_KEYS = 128, 256


@dataclass(frozen=True, slots=True)
class CheckedRecord:
    """A record the port has checked: ``values`` is the unit vector, ``metadata_json`` the
    metadata's compact JSON, ``sparse`` well formed (uint32 indices, no repeats) or None."""

    id: str
    values: Unit
    metadata: Metadata
    metadata_json: str
    sparse: SparseVector | None

    def wire_bytes(self) -> int:
        """An upper bound of this record's size in a JSON request."""
        sparse = 0 if self.sparse is None else _SPARSE_CHARS * len(self.sparse.indices)
        ident = len(json.dumps(self.id))
        return (
            _FLOAT_CHARS * self.values.size
            + len(self.metadata_json)
            + sparse
            + ident
            + (_RECORD_KEYS)
        )


@dataclass(frozen=True, slots=True)
class VectorQuery:
    """A checked query: unit ``vector``, ``top_k`` within the adapter's ``max_top_k``, the
    filter and its compiled tree (``node`` None: no filter). A hybrid query has ``sparse``
    and ranks by ``alpha * dense + (1 - alpha) * sparse``."""

    vector: Unit
    top_k: int
    filter: Filter | None
    node: Node | None
    namespace: str
    include_metadata: bool = True
    sparse: SparseVector | None = None
    alpha: float = 1.0


class VectorIndex(Port):
    """Cosine-similarity index of L2-normalised vectors with Pinecone-style metadata filters.

    Limits an adapter declares (None: no limit of its own): ``max_top_k`` (a larger ``top_k``
    is refused with ``InvalidInput``; ``capped`` clamps a wish to it), ``max_ids`` per fetch or
    delete request, ``max_upsert_records`` and ``max_upsert_bytes`` per upsert request.
    """

    max_top_k: ClassVar[int | None] = None
    max_ids: ClassVar[int | None] = None
    max_upsert_records: ClassVar[int | None] = None
    max_upsert_bytes: ClassVar[int | None] = None

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @property
    def hybrid(self) -> bool:
        """Whether ``query_hybrid`` works: records keep their sparse (lexical) values and one
        query ranks by both (Pinecone with a dotproduct index). Callers query dense otherwise."""
        return False

    # -- the contract -----------------------------------------------------------------------

    def upsert(self, records: Sequence[VectorRecord], *, namespace: str = "") -> int:
        """Insert or replace; returns how many distinct ids were written. Acknowledged means
        durable. Every record is checked before the first request."""
        latest = {validate_record_id(r.id): r for r in records}  # the last write of an id wins
        if not latest:
            return 0
        ids = list(latest)
        rows = unit_rows([latest[i].values for i in ids], self.dimension, ids)
        checked = [self._check_record(latest[i], row) for i, row in zip(ids, rows, strict=True)]
        return sum(self._upsert(batch, namespace) for batch in self._upsert_batches(checked))

    def query(
        self,
        vector: Vector,
        *,
        top_k: int,
        filter: Filter | None = None,
        include_metadata: bool = True,
        namespace: str = "",
    ) -> list[Match]:
        """Best ``top_k`` matches by cosine similarity, highest score first."""
        return self._query(self._check_query(vector, top_k, filter, namespace, include_metadata))

    def query_hybrid(
        self,
        vector: Vector,
        sparse: SparseVector,
        *,
        alpha: float,
        top_k: int,
        filter: Filter | None = None,
        namespace: str = "",
    ) -> list[Match]:
        """Best ``top_k`` by ``alpha * dense + (1 - alpha) * sparse`` dot products, without
        metadata. Refused (``InvalidInput``) by an index that is not ``hybrid``."""
        q = self._check_query(vector, top_k, filter, namespace, False)
        if not 0.0 <= alpha <= 1.0:
            raise InvalidInput(f"alpha must be 0..1, got {alpha}", field="alpha")
        _check_sparse(sparse, "query")
        if not self.hybrid:
            raise InvalidInput(f"this {type(self).__name__} is not a hybrid (sparse-dense) one")
        return self._query_hybrid(replace(q, sparse=sparse, alpha=alpha))

    def fetch(self, ids: Sequence[str], *, namespace: str = "") -> dict[str, VectorRecord]:
        """The stored records of ``ids`` (unit vectors); ids not there are left out."""
        out: dict[str, VectorRecord] = {}
        for chunk in self._id_chunks(ids):
            out.update(self._fetch(chunk, namespace))
        return out

    def delete(self, ids: Sequence[str], *, namespace: str = "") -> None:
        """Deleting ids that are not there is a no-op."""
        for chunk in self._id_chunks(ids):
            self._delete(chunk, namespace)

    def capped(self, top_k: int) -> int:
        """``top_k`` clamped to what this index answers: for callers that ask for a few more
        than they show (to drop excluded hits) and take what they get."""
        return top_k if self.max_top_k is None else min(top_k, self.max_top_k)

    @abstractmethod
    def count(self, *, namespace: str = "") -> int: ...

    @abstractmethod
    def version(self, *, namespace: str = "") -> str:
        """An opaque token that changes whenever the namespace's vectors change and stays the
        same while they do not; clients key caches on it (``/health`` ``index_version``)."""

    @abstractmethod
    def iter_ids(self, *, namespace: str = "") -> Iterator[str]:
        """Every id in the namespace (for reconciliation)."""

    @abstractmethod
    def engine(self, *, namespace: str = "") -> str:
        """What answers queries now (``/health``): ``exact``, ``ann``, ``pinecone``..."""

    # -- what an adapter implements ---------------------------------------------------------

    @abstractmethod
    def _upsert(self, records: Sequence[CheckedRecord], namespace: str) -> int:
        """Write one request's worth of checked records with distinct ids; how many written."""

    @abstractmethod
    def _query(self, query: VectorQuery) -> list[Match]: ...

    def _query_hybrid(self, query: VectorQuery) -> list[Match]:
        """Only called when ``hybrid`` is True: an adapter that says so implements this."""
        raise NotImplementedError(f"{type(self).__name__} says it is hybrid but cannot query so")

    @abstractmethod
    def _fetch(self, ids: Sequence[str], namespace: str) -> dict[str, VectorRecord]:
        """At most ``max_ids`` distinct, valid ids."""

    @abstractmethod
    def _delete(self, ids: Sequence[str], namespace: str) -> None:
        """At most ``max_ids`` distinct, valid ids."""

    # -- the port's own checks and batching -------------------------------------------------

    @staticmethod
    def _check_record(record: VectorRecord, unit: Unit) -> CheckedRecord:
        metadata_json = validate_metadata(record.metadata, record_id=record.id)
        if record.sparse is not None:
            _check_sparse(record.sparse, record.id)
        return CheckedRecord(record.id, unit, record.metadata, metadata_json, record.sparse)

    def _check_query(
        self,
        vector: Vector,
        top_k: int,
        filter: Filter | None,
        namespace: str,
        include_metadata: bool,
    ) -> VectorQuery:
        """A query's own mistakes, named before any I/O: filter, top_k, vector."""
        node = compile_filter(filter) if filter else None
        most = self.max_top_k
        if top_k < 1 or (most is not None and top_k > most):
            limit = f"1..{most}" if most is not None else "at least 1"
            raise InvalidInput(f"top_k must be {limit}, got {top_k}", field="top_k")
        q = unit_rows([vector], self.dimension, ["query"])[0]
        return VectorQuery(q, top_k, filter, node, namespace, include_metadata)

    def _upsert_batches(self, records: list[CheckedRecord]) -> Iterator[list[CheckedRecord]]:
        most, budget = self.max_upsert_records, self.max_upsert_bytes
        if most is None and budget is None:
            yield records
            return
        batch: list[CheckedRecord] = []
        size = _REQUEST_KEYS
        for record in records:
            cost = 0 if budget is None else record.wire_bytes()
            full = most is not None and len(batch) >= most
            if batch and (full or (budget is not None and size + cost > budget)):
                yield batch
                batch, size = [], _REQUEST_KEYS
            batch.append(record)
            size += cost
        if batch:
            yield batch

    def _id_chunks(self, ids: Sequence[str]) -> Iterator[list[str]]:
        unique = [validate_record_id(i) for i in dict.fromkeys(ids)]
        step = self.max_ids or max(len(unique), 1)
        for start in range(0, len(unique), step):
            yield unique[start : start + step]


def unit_rows(vectors: Sequence[Vector], dimension: int, ids: Sequence[str]) -> Unit:
    """The unit float32 rows of ``vectors`` (normalised in float64); refuses a wrong dimension,
    a zero or a non-finite vector, naming its id: cosine has no answer for them."""
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
    unit: Unit = (matrix / norms[:, None]).astype(np.float32)
    return unit


def _check_sparse(sparse: SparseVector, record_id: str) -> None:
    indices = sparse.indices
    if len(indices) != len(sparse.values) or len(set(indices)) != len(indices):
        raise InvalidInput(f"sparse values of {record_id!r} are malformed", field="sparse")
    if not all(0 <= i < 2**32 for i in indices):
        raise InvalidInput(f"sparse indices of {record_id!r} must be uint32", field="sparse")
    if not all(np.isfinite(v) for v in sparse.values):
        raise InvalidInput(f"sparse values of {record_id!r} must be finite", field="sparse")
