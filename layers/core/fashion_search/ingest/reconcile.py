"""``fashion-search reconcile``: compare the catalog with the vector index and repair.

- orphan vectors (no catalog item, or the item is DELETED/FAILED) are deleted;
- PENDING items are re-driven through the ingest core (a crash between the catalog write and
  the upsert, or loader rows nobody ingested); those whose blob is gone get a tombstone;
- INDEXED items without a vector get it back: the stored embedding when it was made by the
  current model, otherwise the image is embedded again;
- INDEXED items embedded by another model are reported (and re-embedded with ``reembed_stale``);
- INDEXED items whose image is gone (deleted while no event could tell us) are removed: vector
  deleted, item tombstoned (``ingest.vanished``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fashion_search.errors import StaleEvent
from fashion_search.ingest.documents import vector_record
from fashion_search.ingest.events import BlobEvent, EventKind
from fashion_search.ingest.outcome import IngestOutcome, OutcomeStatus
from fashion_search.ingest.pipeline import Ingestor
from fashion_search.ingest.vanished import find_vanished, remove_vanished
from fashion_search.types import CatalogItem, ItemStatus

log = logging.getLogger(__name__)
_SAMPLE = 10


@dataclass(slots=True)
class ReconcileReport:
    dry_run: bool
    vectors: int = 0
    indexed: int = 0
    orphan_vectors: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    missing_vectors: list[str] = field(default_factory=list)
    stale_model: list[str] = field(default_factory=list)
    vanished_blobs: list[str] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)  # image id -> why

    @property
    def consistent(self) -> bool:
        return not (
            self.orphan_vectors or self.pending or self.missing_vectors or self.vanished_blobs
        )

    def as_dict(self) -> dict[str, Any]:
        def part(ids: list[str]) -> dict[str, Any]:
            return {"count": len(ids), "sample": ids[:_SAMPLE]}

        return {
            "dry_run": self.dry_run,
            "vectors": self.vectors,
            "indexed": self.indexed,
            "orphan_vectors": part(self.orphan_vectors),
            "pending": part(self.pending),
            "missing_vectors": part(self.missing_vectors),
            "stale_model": part(self.stale_model),
            "vanished_blobs": part(self.vanished_blobs),
            "repaired": self.repaired,
            "unresolved": dict(list(self.unresolved.items())[:_SAMPLE]),
        }


def _redrive_event(item: CatalogItem) -> BlobEvent:
    # The item's own token: the catalog accepts a write with the same token (unless DELETED),
    # and INDEXED is then conditional on it, so a newer real event still wins.
    return BlobEvent(
        kind=EventKind.CREATED,
        key=item.key,
        bucket=item.bucket,
        version_id=item.version_id,
        ordering_token=item.ordering_token,
    )


def reconcile(
    ingestor: Ingestor,
    *,
    fix: bool = True,
    reembed_stale: bool = False,
    batch_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
) -> ReconcileReport:
    stores, model_id = ingestor.stores, ingestor.embedder.model_id
    catalog, vectors, ns = stores.catalog, stores.vectors, stores.namespace
    report = ReconcileReport(dry_run=not fix)
    vector_ids = set(vectors.iter_ids(namespace=ns))
    indexed = {it.image_id: it for it in catalog.by_status(ItemStatus.INDEXED)}
    pending = {it.image_id: it for it in catalog.by_status(ItemStatus.PENDING)}
    report.vectors, report.indexed = len(vector_ids), len(indexed)
    vanished = find_vanished(stores.blobs, indexed.values())
    report.vanished_blobs = [it.image_id for it in vanished]
    report.orphan_vectors = sorted(vector_ids - indexed.keys() - pending.keys())
    report.pending = sorted(pending)
    report.missing_vectors = sorted(indexed.keys() - vector_ids)
    report.stale_model = sorted(i for i, it in indexed.items() if it.model_id != model_id)
    if not fix:
        return report
    progress = on_progress or (lambda n: None)

    # Images gone for good: removed, never re-embedded or restored below.
    removed = remove_vanished(ingestor, vanished, batch_size=batch_size)
    report.repaired["vanished_blobs_removed"] = sum(
        o.status is OutcomeStatus.DELETED for o in removed
    )
    for o in removed:
        if o.status is not OutcomeStatus.DELETED and o.status is not OutcomeStatus.SKIPPED:
            report.unresolved[o.image_id] = o.reason or o.status.value
    progress(len(vanished))
    for image_id in report.vanished_blobs:
        indexed.pop(image_id, None)
    gone_ids = set(report.vanished_blobs)
    missing = [i for i in report.missing_vectors if i not in gone_ids]
    stale = [i for i in report.stale_model if i not in gone_ids]

    for start in range(0, len(report.orphan_vectors), 1000):
        vectors.delete(report.orphan_vectors[start : start + 1000], namespace=ns)
    report.repaired["orphan_vectors_deleted"] = len(report.orphan_vectors)
    progress(len(report.orphan_vectors))

    # Missing vectors whose stored embedding is current: upsert it, no model call.
    reusable = [
        indexed[i]
        for i in missing
        if indexed[i].embedding is not None and indexed[i].model_id == model_id
    ]
    for start in range(0, len(reusable), 100):
        chunk = reusable[start : start + 100]
        records = [vector_record(it) for it in chunk if it.embedding is not None]
        vectors.upsert(records, namespace=ns)
        progress(len(chunk))
    report.repaired["vectors_restored_from_catalog"] = len(reusable)

    # Everything else goes back through the ingest core: set PENDING (conditional on the
    # token, so a newer event is never undone) and re-drive.
    reused = {it.image_id for it in reusable}
    again = [i for i in missing if i not in reused]
    if reembed_stale:
        again += [i for i in stale if i not in reused and i not in again]
    redrive = list(pending.values())
    for image_id in again:
        item = indexed[image_id]
        try:
            catalog.update_status(image_id, ItemStatus.PENDING, expected_token=item.ordering_token)
        except StaleEvent:
            continue  # a newer event got there first
        redrive.append(item)
    outcomes = _redrive(ingestor, redrive, batch_size=batch_size, on_progress=progress)
    counts: dict[str, int] = {}
    gone: list[IngestOutcome] = []
    for o in outcomes:
        counts[o.status.value] = counts.get(o.status.value, 0) + 1
        if o.status is OutcomeStatus.SKIPPED and o.reason == "object no longer exists":
            gone.append(o)
        elif o.status in (OutcomeStatus.RETRY, OutcomeStatus.FAILED):
            report.unresolved[o.image_id] = o.reason or o.status.value
    report.repaired.update({f"redriven_{k}": v for k, v in counts.items()})
    if gone:
        # The blob is gone and its delete event will not come any more: write the tombstone.
        removes = [
            BlobEvent(
                kind=EventKind.REMOVED,
                key=o.event.key,
                bucket=o.event.bucket,
                ordering_token=o.event.ordering_token,
            )
            for o in gone
        ]
        tombstoned = ingestor.handle(removes)
        report.repaired["tombstoned"] = sum(o.status is OutcomeStatus.DELETED for o in tombstoned)
    log.info("reconcile finished", extra={"report": report.as_dict()})
    return report


def _redrive(
    ingestor: Ingestor,
    items: Sequence[CatalogItem],
    *,
    batch_size: int,
    on_progress: Callable[[int], None],
) -> list[IngestOutcome]:
    outcomes: list[IngestOutcome] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        outcomes.extend(ingestor.handle([_redrive_event(it) for it in chunk]))
        on_progress(len(chunk))
    return outcomes
