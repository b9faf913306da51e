"""The catalog port, one item per image. Adapters: embedded.sqlite_catalog, aws.dynamodb_catalog."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from fashion_search.errors import InvalidInput, StoreError
from fashion_search.lexical import LexicalStats
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


@runtime_checkable
class Catalog(Protocol):
    def put(self, item: CatalogItem) -> None:
        """Unconditional insert-or-replace (the loader, migrations)."""
        ...

    def put_if_newer(self, item: CatalogItem) -> CatalogItem:
        """Write ``item`` unless the stored item has a larger ``ordering_token``, or has the same
        token and is already DELETED (a late create must not resurrect a delete).

        Tags and display name already stored (written by the loader) are kept when ``item`` has
        none. Returns the item as stored. Raises ``StaleEvent`` when refused.
        """
        ...

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
        still carries that ordering token (else ``StaleEvent``)."""
        ...

    def get(self, image_id: str) -> CatalogItem | None: ...

    def get_many(self, image_ids: Sequence[str]) -> dict[str, CatalogItem]: ...

    def find_by_hash(self, content_hash: str) -> list[CatalogItem]: ...

    def by_status(self, status: ItemStatus) -> Iterator[CatalogItem]: ...

    def count(self, status: ItemStatus | None = None) -> int: ...

    def tag_values(self) -> dict[str, list[str]]:
        """Each tag field the catalog knows, with its distinct values (for filters and UI)."""
        ...

    def delete(self, image_id: str) -> None:
        """Remove the row entirely (tests and migrations; ingest tombstones instead)."""
        ...


@runtime_checkable
class LexicalCatalog(Protocol):
    """A catalog that finds items by their words itself (SQLite FTS5 in the embedded home)."""

    def lexical_matches(
        self, tokens: Sequence[str], *, limit: int, also: Sequence[str] = ()
    ) -> list[tuple[str, list[str]]]: ...

    def lexical_terms(self, image_ids: Sequence[str]) -> dict[str, list[str]]: ...

    def lexical_stats(self, tokens: Sequence[str]) -> LexicalStats: ...
