"""The create half's writes: catalog PENDING (with the embedding), one batched upsert, then
catalog INDEXED conditional on the event's ordering token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fashion_search.errors import StaleEvent
from fashion_search.ingest.batch import IngestBatch, error_detail
from fashion_search.ingest.documents import vector_record
from fashion_search.ingest.events import BlobEvent
from fashion_search.ingest.outcome import OutcomeReason, OutcomeStatus
from fashion_search.types import CatalogItem, ItemStatus, Vector, VectorRecord

if TYPE_CHECKING:
    from fashion_search.home import Stores

_S, _R = OutcomeStatus, OutcomeReason


@dataclass(slots=True)
class Create:
    """One created object on its way through the batch."""

    index: int
    event: BlobEvent
    image_id: str
    stored: CatalogItem | None
    data: bytes = b""
    content_hash: str = ""
    etag: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    display_name: str | None = None
    tags_predicted: bool = False
    vector: Vector | None = None
    text_vector: Vector | None = None  # the display name's (``fashion_search.ingest.documents``)


def catalog_item(
    c: Create, status: ItemStatus, *, model_id: str | None, reason: str | None = None
) -> CatalogItem:
    ev = c.event
    return CatalogItem(
        image_id=c.image_id,
        key=ev.key,
        status=status,
        bucket=ev.bucket,
        tags=c.tags,
        tags_predicted=c.tags_predicted,
        display_name=c.display_name,
        content_hash=c.content_hash or None,
        etag=c.etag or ev.etag,
        version_id=ev.version_id,
        ordering_token=ev.ordering_token,
        model_id=model_id if c.vector is not None else None,
        embedding=c.vector,
        text_embedding=c.text_vector if c.vector is not None else None,
        reason=reason,
    )


def put_if_newer(
    stores: Stores,
    batch: IngestBatch,
    i: int,
    item: CatalogItem,
    *,
    on_error: OutcomeReason = _R.CATALOG_WRITE,
) -> CatalogItem | None:
    """The catalog write of event ``i``, conditional on its ordering token. None when it did not
    happen, with event ``i``'s outcome recorded: stale (a newer event holds the item) or retry."""
    try:
        return stores.catalog.put_if_newer(item)
    except StaleEvent:
        batch.skipped(i, _R.STALE)
    except Exception as exc:
        batch.retry(i, on_error, error_detail(exc))
    return None


def write_indexed(
    stores: Stores, batch: IngestBatch, ready: list[Create], *, model_id: str, upsert_chunk: int
) -> None:
    records: list[tuple[Create, VectorRecord]] = []
    for c in ready:
        if c.vector is None:
            continue
        pending = catalog_item(c, ItemStatus.PENDING, model_id=model_id)
        stored = put_if_newer(stores, batch, c.index, pending)
        if stored is not None:
            records.append((c, vector_record(stored, c.vector)))
    for start in range(0, len(records), upsert_chunk):
        chunk = records[start : start + upsert_chunk]
        try:
            stores.vectors.upsert([r for _, r in chunk], namespace=stores.namespace)
        except Exception as exc:
            # The items stay PENDING with their embedding: the retry (or reconcile) finishes.
            for c, _ in chunk:
                batch.retry(c.index, _R.VECTOR_UPSERT, error_detail(exc))
            continue
        for c, _ in chunk:
            _mark_indexed(stores, batch, c, model_id=model_id)


def _mark_indexed(stores: Stores, batch: IngestBatch, c: Create, *, model_id: str) -> None:
    try:
        stores.catalog.update_status(
            c.image_id,
            ItemStatus.INDEXED,
            model_id=model_id,
            expected_token=c.event.ordering_token,
        )
    except StaleEvent:
        # A newer event got in between. If it was a delete, our upsert may have put the
        # vector back after its delete: take it out again.
        try:
            cur = stores.catalog.get(c.image_id)
            if cur is None or cur.status is ItemStatus.DELETED:
                stores.vectors.delete([c.image_id], namespace=stores.namespace)
        except Exception as exc:
            batch.retry(c.index, _R.CLEANUP, error_detail(exc))
            return
        batch.skipped(c.index, _R.STALE_MEANWHILE)
        return
    except Exception as exc:
        batch.retry(c.index, _R.CATALOG_WRITE, error_detail(exc))
        return
    batch.done(c.index, _S.INDEXED)
