"""The catalog port, one item per image. Adapters: embedded.sqlite_catalog, aws.dynamodb_catalog.

``Catalog`` is a base class like the vector port (``stores.vectors``): its public methods check
their input (a status that is not an ``ItemStatus`` is ``InvalidInput`` in every home),
de-duplicate ids and cut batch reads to the size the adapter declares (``max_get_many``:
DynamoDB's BatchGetItem takes 100 keys), then call the adapter's private ``_methods``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from fashion_search.errors import InvalidInput, StoreError
from fashion_search.lexical import LexicalStats
from fashion_search.stores.port import Port
from fashion_search.types import CatalogItem, ItemStatus, Vector

# Embeddings are kept as little-endian float32 bytes (2 KiB for 512 dims) next to the model id
# and the dimension, so an index can be rebuilt from the catalog alone, bit for bit.
EMBEDDING_DTYPE = np.dtype("<f4")
# ``tag_values`` stops recording a field past this many distinct values: it is free text then,
# not a filter menu (and DynamoDB's aggregate item must stay under 400 KB).
MAX_TAG_VALUES_PER_FIELD = 1000


def encode_embedding(vector: Vector) -> tuple[bytes, int]:
    """``(bytes, dimension)`` of a 1-D vector; the bytes are little-endian float32."""
    array = np.asarray(vector)
    if array.ndim != 1 or array.size == 0:
        raise InvalidInput(f"an embedding must be a non-empty 1-D vector, got shape {array.shape}")
    return array.astype(EMBEDDING_DTYPE, copy=False).tobytes(), int(array.size)


def decode_embedding(data: bytes, dimension: int) -> Vector:
    """The vector stored by ``encode_embedding`` (a writable native float32 copy)."""
    if dimension <= 0 or len(data) != dimension * EMBEDDING_DTYPE.itemsize:
        raise StoreError(
            f"stored embedding is {len(data)} bytes, expected {dimension} float32 values"
        )
    return np.frombuffer(data, dtype=EMBEDDING_DTYPE).astype(np.float32)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """What ``update_status`` asks of an adapter, checked."""

    image_id: str
    status: ItemStatus
    # None clears the stored reason but keeps the stored model id.
    reason: str | None
    model_id: str | None
    # Write only if the stored item still carries this ordering token (else StaleEvent).
    expected_token: str | None


class Catalog(Port):
    """One item per image id; ordering tokens keep a late event from undoing a newer one."""

    max_get_many: ClassVar[int | None] = None  # ids per batch read request (None: no limit)

    @abstractmethod
    def put(self, item: CatalogItem) -> None:
        """Unconditional insert-or-replace (the loader, migrations)."""

    @abstractmethod
    def put_if_newer(self, item: CatalogItem) -> CatalogItem:
        """Write ``item`` unless the stored item has a larger ``ordering_token``, or has the same
        token and is already DELETED (a late create must not resurrect a delete).

        Tags and display name already stored (written by the loader) are kept when ``item`` has
        none. Returns the item as stored. Raises ``StaleEvent`` when refused.
        """

    def update_status(
        self,
        image_id: str,
        status: ItemStatus,
        *,
        reason: str | None = None,
        model_id: str | None = None,
        expected_token: str | None = None,
    ) -> None:
        """Set status (and reason/model id). With ``expected_token``, only if the stored item
        still carries that ordering token (else ``StaleEvent``); ``NotFound`` if absent."""
        change = StatusChange(image_id, _status(status), reason, model_id, expected_token)
        self._update_status(change)

    @abstractmethod
    def get(self, image_id: str) -> CatalogItem | None: ...

    def get_many(self, image_ids: Sequence[str]) -> dict[str, CatalogItem]:
        """The items of ``image_ids`` that exist; each id is read once, however often given."""
        ids = list(dict.fromkeys(image_ids))
        step = self.max_get_many or max(len(ids), 1)
        found: dict[str, CatalogItem] = {}
        for start in range(0, len(ids), step):
            found.update(self._get_many(ids[start : start + step]))
        return found

    @abstractmethod
    def find_by_hash(self, content_hash: str) -> list[CatalogItem]: ...

    def by_status(self, status: ItemStatus) -> Iterator[CatalogItem]:
        """Items in ``status``, oldest update first."""
        return self._by_status(_status(status))

    def count(self, status: ItemStatus | None = None) -> int:
        return self._count(None if status is None else _status(status))

    @abstractmethod
    def tag_values(self) -> dict[str, list[str]]:
        """Each tag field the catalog knows, with its distinct values (for filters and UI)."""

    @abstractmethod
    def delete(self, image_id: str) -> None:
        """Remove the row entirely (tests and migrations; ingest tombstones instead)."""

    # -- what an adapter implements ---------------------------------------------------------

    @abstractmethod
    def _update_status(self, change: StatusChange) -> None: ...

    @abstractmethod
    def _get_many(self, image_ids: Sequence[str]) -> dict[str, CatalogItem]:
        """At most ``max_get_many`` distinct ids."""

    @abstractmethod
    def _by_status(self, status: ItemStatus) -> Iterator[CatalogItem]: ...

    @abstractmethod
    def _count(self, status: ItemStatus | None) -> int: ...


def _status(status: str) -> ItemStatus:
    try:
        return ItemStatus(status)
    except ValueError as exc:
        known = ", ".join(s.value for s in ItemStatus)
        raise InvalidInput(
            f"status must be one of {known}, got {status!r}", field="status"
        ) from exc


@runtime_checkable
class LexicalCatalog(Protocol):
    """A catalog that finds items by their words itself (SQLite FTS5 in the embedded home)."""

    def lexical_matches(
        self, tokens: Sequence[str], *, limit: int, also: Sequence[str] = ()
    ) -> list[tuple[str, list[str]]]: ...

    def lexical_terms(self, image_ids: Sequence[str]) -> dict[str, list[str]]: ...

    def lexical_stats(self, tokens: Sequence[str]) -> LexicalStats: ...
