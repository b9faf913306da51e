"""The remove half of the pipeline: tombstone first, then the vector delete, so a create event
delivered late (smaller ordering token) is refused by the catalog and cannot resurrect it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fashion_search.ingest.batch import IngestBatch, error_detail
from fashion_search.ingest.events import BlobEvent
from fashion_search.ingest.outcome import OutcomeReason, OutcomeStatus
from fashion_search.ingest.writes import put_if_newer
from fashion_search.types import CatalogItem, ItemStatus

if TYPE_CHECKING:
    from fashion_search.home import Stores

_S, _R = OutcomeStatus, OutcomeReason


def apply_removes(
    stores: Stores,
    batch: IngestBatch,
    removes: list[tuple[int, BlobEvent]],
    stored: dict[str, CatalogItem],
) -> None:
    to_delete: list[tuple[int, BlobEvent, bool]] = []  # (index, event, is a replay)
    for i, ev in removes:
        iid = batch.image_id(ev)
        cur = stored.get(iid)
        token = ev.ordering_token
        if cur is not None and cur.ordering_token > token:
            batch.skipped(i, _R.STALE)
            continue
        replay = (
            cur is not None and cur.status is ItemStatus.DELETED and cur.ordering_token == token
        )
        if not replay:
            tomb = CatalogItem(
                image_id=iid,
                key=ev.key,
                status=ItemStatus.DELETED,
                bucket=ev.bucket,
                version_id=ev.version_id,
                ordering_token=token,
            )
            if put_if_newer(stores, batch, i, tomb) is None:
                continue
        # A replayed delete still deletes: the first attempt may have died between the
        # tombstone and the vector delete. Deleting a missing id is a no-op.
        to_delete.append((i, ev, replay))
    ids = [batch.image_id(ev) for _, ev, _ in to_delete]
    try:  # the port cuts the ids into requests its adapter takes
        stores.vectors.delete(ids, namespace=stores.namespace)
    except Exception as exc:
        for i, _, _ in to_delete:
            batch.retry(i, _R.VECTOR_DELETE, error_detail(exc))
        return
    for i, _, replay in to_delete:
        if replay:
            batch.skipped(i, _R.ALREADY_DELETED)
        else:
            batch.done(i, _S.DELETED)
