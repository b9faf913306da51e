"""The catalog port: one item per image. Adapters: ``catalog_sqlite`` and ``catalog_dynamodb``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from fashion_search.types import CatalogItem, ItemStatus


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
