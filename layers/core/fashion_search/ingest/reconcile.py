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
from typing import TYPE_CHECKING, Any

from fashion_search.errors import StaleEvent
from fashion_search.ingest.documents import vector_record
from fashion_search.ingest.events import BlobEvent, EventKind
from fashion_search.ingest.outcome import IngestOutcome, OutcomeReason, OutcomeStatus
from fashion_search.ingest.pipeline import Ingestor
from fashion_search.ingest.vanished import find_vanished, remove_vanished
from fashion_search.types import CatalogItem, ItemStatus

if TYPE_CHECKING:
    from fashion_search.home import Stores

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


@dataclass(slots=True)
class _Survey:
    """What reconcile found, with the catalog items behind the report's ids."""

    report: ReconcileReport
    indexed: dict[str, CatalogItem]  # INDEXED items whose image is still there
    pending: list[CatalogItem]
    vanished: list[CatalogItem]

    def still_there(self, ids: list[str]) -> list[str]:
        gone = set(self.report.vanished_blobs)
        return [i for i in ids if i not in gone]


def reconcile(
    ingestor: Ingestor,
    *,
    fix: bool = True,
    reembed_stale: bool = False,
    batch_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
) -> ReconcileReport:
    survey = _survey(ingestor, fix=fix)
    report = survey.report
    if not fix:
        return report
    progress = on_progress or (lambda n: None)
    # Images gone for good first: removed, never re-embedded or restored below.
    _remove_vanished(ingestor, survey, batch_size=batch_size, on_progress=progress)
    _delete_orphans(ingestor.stores, report, on_progress=progress)
    missing = survey.still_there(report.missing_vectors)
    reused = _restore_from_catalog(ingestor, survey, missing, on_progress=progress)
    again = [i for i in missing if i not in reused]
    if reembed_stale:
        stale = survey.still_there(report.stale_model)
        again += [i for i in stale if i not in reused and i not in again]
    redrive = survey.pending + _set_pending(ingestor, survey, again)
    outcomes = _redrive(ingestor, redrive, batch_size=batch_size, on_progress=progress)
    gone = _note_redriven(report, outcomes)
    if gone:
        _tombstone(ingestor, report, gone)
    log.info("reconcile finished", extra={"report": report.as_dict()})
    return report


def _survey(ingestor: Ingestor, *, fix: bool) -> _Survey:
    """Compare the catalog with the index (and the blob store) without changing anything."""
    stores, model_id = ingestor.stores, ingestor.embedder.model_id
    report = ReconcileReport(dry_run=not fix)
    vector_ids = set(stores.vectors.iter_ids(namespace=stores.namespace))
    indexed = {it.image_id: it for it in stores.catalog.by_status(ItemStatus.INDEXED)}
    pending = {it.image_id: it for it in stores.catalog.by_status(ItemStatus.PENDING)}
    report.vectors, report.indexed = len(vector_ids), len(indexed)
    vanished = find_vanished(stores.blobs, indexed.values())
    report.vanished_blobs = [it.image_id for it in vanished]
    report.orphan_vectors = sorted(vector_ids - indexed.keys() - pending.keys())
    report.pending = sorted(pending)
    report.missing_vectors = sorted(indexed.keys() - vector_ids)
    report.stale_model = sorted(i for i, it in indexed.items() if it.model_id != model_id)
    for it in vanished:
        del indexed[it.image_id]
    return _Survey(report, indexed, list(pending.values()), vanished)


def _remove_vanished(
    ingestor: Ingestor,
    survey: _Survey,
    *,
    batch_size: int,
    on_progress: Callable[[int], None],
) -> None:
    report = survey.report
    removed = remove_vanished(ingestor, survey.vanished, batch_size=batch_size)
    report.repaired["vanished_blobs_removed"] = sum(
        o.status is OutcomeStatus.DELETED for o in removed
    )
    for o in removed:
        if o.status is not OutcomeStatus.DELETED and o.status is not OutcomeStatus.SKIPPED:
            report.unresolved[o.image_id] = o.reason or o.status.value
    on_progress(len(survey.vanished))


def _delete_orphans(
    stores: Stores, report: ReconcileReport, *, on_progress: Callable[[int], None]
) -> None:
    orphans = report.orphan_vectors
    stores.vectors.delete(orphans, namespace=stores.namespace)  # the port cuts it into requests
    report.repaired["orphan_vectors_deleted"] = len(orphans)
    on_progress(len(orphans))


def _restore_from_catalog(
    ingestor: Ingestor,
    survey: _Survey,
    missing: list[str],
    *,
    on_progress: Callable[[int], None],
) -> set[str]:
    """Missing vectors whose stored embedding is current: upserted again, no model call.
    Returns their ids."""
    stores, model_id, indexed = ingestor.stores, ingestor.embedder.model_id, survey.indexed
    reusable = [
        indexed[i]
        for i in missing
        if indexed[i].embedding is not None and indexed[i].model_id == model_id
    ]
    for start in range(0, len(reusable), 100):
        chunk = reusable[start : start + 100]
        records = [vector_record(it) for it in chunk if it.embedding is not None]
        stores.vectors.upsert(records, namespace=stores.namespace)
        on_progress(len(chunk))
    survey.report.repaired["vectors_restored_from_catalog"] = len(reusable)
    return {it.image_id for it in reusable}


def _set_pending(ingestor: Ingestor, survey: _Survey, ids: list[str]) -> list[CatalogItem]:
    """Items to embed again, set PENDING conditional on their token (so a newer event is never
    undone); the ones a newer event got to first are left out."""
    items: list[CatalogItem] = []
    for image_id in ids:
        item = survey.indexed[image_id]
        try:
            ingestor.stores.catalog.update_status(
                image_id, ItemStatus.PENDING, expected_token=item.ordering_token
            )
        except StaleEvent:
            continue
        items.append(item)
    return items


def _redrive(
    ingestor: Ingestor,
    items: Sequence[CatalogItem],
    *,
    batch_size: int,
    on_progress: Callable[[int], None],
) -> list[IngestOutcome]:
    """Back through the ingest core, as the lost or failed create event would have gone."""
    outcomes: list[IngestOutcome] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        outcomes.extend(ingestor.handle([_redrive_event(it) for it in chunk]))
        on_progress(len(chunk))
    return outcomes


def _note_redriven(report: ReconcileReport, outcomes: list[IngestOutcome]) -> list[IngestOutcome]:
    """Count the re-driven outcomes into the report; return those whose image is gone."""
    counts: dict[str, int] = {}
    gone: list[IngestOutcome] = []
    for o in outcomes:
        counts[o.status.value] = counts.get(o.status.value, 0) + 1
        if o.code is OutcomeReason.OBJECT_GONE:
            gone.append(o)
        elif o.status in (OutcomeStatus.RETRY, OutcomeStatus.FAILED):
            report.unresolved[o.image_id] = o.reason or o.status.value
    report.repaired.update({f"redriven_{k}": v for k, v in counts.items()})
    return gone


def _tombstone(ingestor: Ingestor, report: ReconcileReport, gone: list[IngestOutcome]) -> None:
    """The blob is gone and its delete event will not come any more: write the tombstone."""
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
