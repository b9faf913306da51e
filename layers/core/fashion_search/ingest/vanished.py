"""Catalog items whose image is gone: deleted while no event could tell us (the watcher was not
running, an S3 notification was lost). ``reconcile`` and the watcher's catch-up remove them, so
a search never answers with an image URL that is a 404.

One listing of the blob store under the items' common prefix finds the absentees (S3 lists 1,000
keys a request, so a 44k catalog is 45 requests, not 44k heads); each absentee is then confirmed
with a ``head``, since a listing is only a moment's view.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from fashion_search.ingest.events import BlobEvent, EventKind
from fashion_search.ingest.outcome import IngestOutcome
from fashion_search.ingest.pipeline import Ingestor
from fashion_search.stores.blobs import BlobStore
from fashion_search.types import CatalogItem


def find_vanished(blobs: BlobStore, items: Iterable[CatalogItem]) -> list[CatalogItem]:
    """The items (sorted by id) whose blob the store no longer holds."""
    by_key = {it.key: it for it in items}
    if not by_key:
        return []
    # ListObjectsV2 returns keys under a prefix, up to 1,000 per page:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
    prefix = os.path.commonprefix(list(by_key))
    listed = {info.key for info in blobs.list(prefix) if info.key in by_key}
    absent = [it for key, it in by_key.items() if key not in listed]
    gone = [it for it in absent if blobs.head(it.key) is None]
    return sorted(gone, key=lambda it: it.image_id)


def remove_vanished(
    ingestor: Ingestor, items: Sequence[CatalogItem], *, batch_size: int = 64
) -> list[IngestOutcome]:
    """Delete their vectors and tombstone them through the ingest core, as a delete event would.

    Each removal carries the item's own ordering token: the catalog takes it over the item as it
    stands, and a newer event (the image uploaded again meanwhile) still wins over it."""
    outcomes: list[IngestOutcome] = []
    for start in range(0, len(items), batch_size):
        events = [
            BlobEvent(
                kind=EventKind.REMOVED,
                key=it.key,
                bucket=it.bucket,
                ordering_token=it.ordering_token,
            )
            for it in items[start : start + batch_size]
        ]
        outcomes.extend(ingestor.handle(events))
    return outcomes
