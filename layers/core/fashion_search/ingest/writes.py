"""The create half's writes: catalog PENDING (with the embedding), one batched upsert, then
catalog INDEXED conditional on the event's ordering token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fashion_search.errors import StaleEvent
from fashion_search.ingest.documents import vector_record
from fashion_search.ingest.events import BlobEvent
from fashion_search.ingest.outcome import OutcomeStatus
from fashion_search.ingest.removes import STALE, retry_reason
from fashion_search.types import CatalogItem, ItemStatus, Vector, VectorRecord

if TYPE_CHECKING:
    from fashion_search.home import Stores

Done = Callable[[int, BlobEvent, OutcomeStatus, "str | None"], None]
_S = OutcomeStatus


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
    fail_reason: str | None = None


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


def write_indexed(
    stores: Stores, ready: list[Create], *, model_id: str, upsert_chunk: int, done: Done
) -> None:
    records: list[tuple[Create, VectorRecord]] = []
    for c in ready:
        if c.vector is None:
            continue
        try:
            stored = stores.catalog.put_if_newer(
                catalog_item(c, ItemStatus.PENDING, model_id=model_id)
            )
        except StaleEvent:
            done(c.index, c.event, _S.SKIPPED, STALE)
            continue
        except Exception as exc:
            done(c.index, c.event, _S.RETRY, "catalog: " + retry_reason(exc))
            continue
        records.append((c, vector_record(stored, c.vector)))
    for start in range(0, len(records), upsert_chunk):
        chunk = records[start : start + upsert_chunk]
        try:
            stores.vectors.upsert([r for _, r in chunk], namespace=stores.namespace)
        except Exception as exc:
            # The items stay PENDING with their embedding: the retry (or reconcile) finishes.
            for c, _ in chunk:
                done(c.index, c.event, _S.RETRY, "vector upsert: " + retry_reason(exc))
            continue
        for c, _ in chunk:
            _mark_indexed(stores, c, model_id=model_id, done=done)


def _mark_indexed(stores: Stores, c: Create, *, model_id: str, done: Done) -> None:
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
            done(c.index, c.event, _S.RETRY, "cleanup: " + retry_reason(exc))
            return
        done(c.index, c.event, _S.SKIPPED, "stale: a newer event was applied meanwhile")
        return
    except Exception as exc:
        done(c.index, c.event, _S.RETRY, "catalog: " + retry_reason(exc))
        return
    done(c.index, c.event, _S.INDEXED, None)
