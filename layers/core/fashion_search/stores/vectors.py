"""The vector index port. Adapters: embedded.vector_index (one machine) and pinecone_index."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from fashion_search.types import Filter, Match, SparseVector, Vector, VectorRecord


@runtime_checkable
class VectorIndex(Protocol):
    """Cosine-similarity index of L2-normalised vectors with Pinecone-style metadata filters.

    Every adapter validates filters with ``fashion_search.stores.filters`` before any I/O, so an
    unknown operator raises ``InvalidFilter`` the same way everywhere.
    """

    @property
    def dimension(self) -> int: ...

    def upsert(self, records: Sequence[VectorRecord], *, namespace: str = "") -> int:
        """Insert or replace; returns how many were written. Acknowledged means durable."""
        ...

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
        ...

    def fetch(self, ids: Sequence[str], *, namespace: str = "") -> dict[str, VectorRecord]: ...

    def delete(self, ids: Sequence[str], *, namespace: str = "") -> None:
        """Deleting ids that are not there is a no-op."""
        ...

    def count(self, *, namespace: str = "") -> int: ...

    def version(self, *, namespace: str = "") -> str:
        """An opaque token that changes whenever the namespace's vectors change and stays the
        same while they do not; clients key caches on it (``/health`` ``index_version``)."""
        ...

    def iter_ids(self, *, namespace: str = "") -> Iterator[str]:
        """Every id in the namespace (for reconciliation)."""
        ...


@runtime_checkable
class HybridVectorIndex(Protocol):
    """An index that also holds each record's sparse (lexical) values and answers one
    sparse-dense query: Pinecone with a dotproduct index. ``hybrid`` is False when this index
    cannot (a cosine index made before issue #16): callers then query dense only."""

    @property
    def hybrid(self) -> bool: ...

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
        """Best ``top_k`` by ``alpha * dense + (1 - alpha) * sparse`` dot products."""
        ...
