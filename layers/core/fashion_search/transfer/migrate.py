"""``fashion-search migrate``: copy a whole catalog from one home to the other.

Items go in batches (``copier.Copier``: rows with their embedding, then vectors from the stored
embeddings, then blobs, concurrently), every status included, then ``verify`` compares the homes.

Resuming is compare-and-skip: before writing, each batch reads what the target already holds
(rows, vectors, blob heads) and writes only what is missing or different, so a re-run after an
interruption copies only the rest and never writes anything twice. Without ``resume`` a target
that already holds items is refused, so two catalogs are never merged by accident.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fashion_search.errors import InvalidInput
from fashion_search.transfer.copier import Copier, Tally
from fashion_search.transfer.verify import SETTLE_S, VerifyReport, verify
from fashion_search.types import CatalogItem, ItemStatus

if TYPE_CHECKING:
    from fashion_search.home import Stores

log = logging.getLogger(__name__)
_SHOWN = 10
MAX_BATCH = 1000


@dataclass(slots=True)
class MigrateReport(Tally):
    verification: VerifyReport | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and (self.verification is None or self.verification.ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "items_copied": dict(self.items_copied),
            "items_present": self.items_present,
            "vectors_copied": self.vectors_copied,
            "vectors_present": self.vectors_present,
            "blobs_copied": self.blobs_copied,
            "blobs_present": self.blobs_present,
            "problems": {
                "count": len(self.problems),
                "sample": dict(list(self.problems.items())[:_SHOWN]),
            },
            "verification": self.verification.as_dict() if self.verification else None,
        }


def migrate(
    source: Stores,
    target: Stores,
    *,
    max_blob_bytes: int,
    resume: bool = False,
    batch_size: int = 100,
    workers: int = 8,
    verify_sample: int = 100,
    settle_s: Sequence[float] = SETTLE_S,
    on_progress: Callable[[int], None] | None = None,
) -> MigrateReport:
    """Copy every item of ``source`` (all statuses) into ``target``; then verify (``settle_s``:
    pauses before a missing vector or an unequal count is final, see ``verify``)."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(
            f"batch size must be 1..{MAX_BATCH}, got {batch_size}", field="batch_size"
        )
    if not 1 <= workers <= 64:
        raise InvalidInput(f"workers must be 1..64, got {workers}", field="workers")
    present = target.catalog.count()
    if present and not resume:
        raise InvalidInput(
            f"the target home already holds {present} items: pass --resume to continue an "
            "interrupted migration into it (only what is missing is copied)",
            field="resume",
        )
    report = MigrateReport()
    copier = Copier(source, target, max_blob_bytes=max_blob_bytes, workers=workers, tally=report)
    progress = on_progress or (lambda n: None)
    for batch in _batches(_every_item(source), batch_size):
        copier.batch(batch)
        progress(len(batch))
    report.verification = verify(source, target, sample=verify_sample, settle_s=settle_s)
    log.info("migration finished", extra={"report": report.as_dict()})
    return report


def _every_item(stores: Stores) -> Iterator[CatalogItem]:
    for status in ItemStatus:
        yield from stores.catalog.by_status(status)


def _batches(items: Iterable[CatalogItem], size: int) -> Iterator[list[CatalogItem]]:
    batch: list[CatalogItem] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
