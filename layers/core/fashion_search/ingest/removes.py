"""The remove half of the pipeline: tombstone first, then the vector delete, so a create event
delivered late (smaller ordering token) is refused by the catalog and cannot resurrect it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fashion_search.errors import FashionSearchError, StaleEvent
from fashion_search.ingest.events import BlobEvent
from fashion_search.ingest.outcome import OutcomeStatus
from fashion_search.types import CatalogItem, ItemStatus

if TYPE_CHECKING:
    from fashion_search.home import Stores

Done = Callable[[int, BlobEvent, OutcomeStatus, "str | None"], None]
STALE = "stale: a newer event was already applied"
# Pinecone takes at most 1000 ids per delete.
DELETE_CHUNK = 1000


def retry_reason(exc: Exception) -> str:
    if isinstance(exc, FashionSearchError):
        return f"{exc.code}: {exc.message}"
    return f"unexpected {type(exc).__name__}"


def apply_removes(
    stores: Stores,
    removes: list[tuple[int, BlobEvent]],
    stored: dict[str, CatalogItem],
    done: Done,
) -> None:
    to_delete: list[tuple[int, BlobEvent, bool]] = []  # (index, event, is a replay)
    for i, ev in removes:
        iid = ev.image_id(stores.ingest_prefix)
        cur = stored.get(iid)
        token = ev.ordering_token
        if cur is not None and cur.ordering_token > token:
            done(i, ev, OutcomeStatus.SKIPPED, STALE)
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
            try:
                stores.catalog.put_if_newer(tomb)
            except StaleEvent:
                done(i, ev, OutcomeStatus.SKIPPED, STALE)
                continue
            except Exception as exc:
                done(i, ev, OutcomeStatus.RETRY, "catalog: " + retry_reason(exc))
                continue
        # A replayed delete still deletes: the first attempt may have died between the
        # tombstone and the vector delete. Deleting a missing id is a no-op.
        to_delete.append((i, ev, replay))
    ids = [ev.image_id(stores.ingest_prefix) for _, ev, _ in to_delete]
    try:
        for start in range(0, len(ids), DELETE_CHUNK):
            stores.vectors.delete(ids[start : start + DELETE_CHUNK], namespace=stores.namespace)
    except Exception as exc:
        for i, ev, _ in to_delete:
            done(i, ev, OutcomeStatus.RETRY, "vector delete: " + retry_reason(exc))
        return
    for i, ev, replay in to_delete:
        if replay:
            done(i, ev, OutcomeStatus.SKIPPED, "duplicate: already deleted")
        else:
            done(i, ev, OutcomeStatus.DELETED, None)
