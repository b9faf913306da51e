"""``fashion-search reindex``: rebuild a vector index from the catalog alone.

Every INDEXED item keeps its embedding (with the model id and dimension) in the catalog, so an
index that was lost, replaced or switched (embedded -> Pinecone) is rebuilt without the model and
without reading a single image. The vector metadata is the ingest core's own
(``ingest.metadata.vector_metadata``), so a rebuilt index answers filters exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fashion_search.errors import InvalidInput
from fashion_search.ingest.documents import vector_record
from fashion_search.types import CatalogItem, ItemStatus, VectorRecord

if TYPE_CHECKING:
    from fashion_search.home import Stores

log = logging.getLogger(__name__)
# Not an index limit (the vector port cuts requests to its adapter's): this only bounds how much
# one step holds in memory and how much a failure repeats.
MAX_BATCH = 1000


@dataclass(slots=True)
class ReindexReport:
    model_id: str
    dimension: int
    rebuilt: int = 0
    skipped_without_embedding: int = 0
    skipped_other_model: int = 0
    deleted_not_in_catalog: int = 0
    # image id -> why the index refused its vector (a non-ASCII id in Pinecone, a zero vector)
    refused: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["refused"] = {
            "count": len(self.refused),
            "sample": dict(list(self.refused.items())[:10]),
        }
        return out


def reindex(
    stores: Stores,
    *,
    model_id: str,
    batch_size: int = 100,
    prune: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ReindexReport:
    """Upsert the stored embedding of every INDEXED item made by ``model_id`` whose dimension is
    the index's. With ``prune``, delete index ids that no INDEXED or PENDING item owns (PENDING
    items may legitimately have their vector already: the upsert precedes the INDEXED mark)."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(
            f"batch size must be 1..{MAX_BATCH}, got {batch_size}", field="batch_size"
        )
    if not model_id:
        raise InvalidInput(
            "a model id is needed to choose which embeddings to use", field="model_id"
        )
    catalog, vectors, ns = stores.catalog, stores.vectors, stores.namespace
    report = ReindexReport(model_id=model_id, dimension=vectors.dimension)
    progress = on_progress or (lambda n: None)
    batch: list[VectorRecord] = []
    for item in catalog.by_status(ItemStatus.INDEXED):
        record = _record(item, report)
        if record is None:
            progress(1)
            continue
        batch.append(record)
        if len(batch) >= batch_size:
            _upsert(stores, batch, report, progress)
            batch = []
    if batch:
        _upsert(stores, batch, report, progress)
    if prune:
        owned = {it.image_id for it in _owners(stores)}
        orphans = [i for i in vectors.iter_ids(namespace=ns) if i not in owned]
        vectors.delete(orphans, namespace=ns)
        report.deleted_not_in_catalog = len(orphans)
    log.info("reindex finished", extra={"report": report.as_dict()})
    return report


def _record(item: CatalogItem, report: ReindexReport) -> VectorRecord | None:
    """The item's vector record, or None (counted) when its embedding cannot be used."""
    if item.embedding is None:
        report.skipped_without_embedding += 1
        return None
    if item.model_id != report.model_id or item.embedding.shape[0] != report.dimension:
        report.skipped_other_model += 1
        return None
    return vector_record(item)


def _upsert(
    stores: Stores,
    batch: list[VectorRecord],
    report: ReindexReport,
    progress: Callable[[int], None],
) -> None:
    try:
        stores.vectors.upsert(batch, namespace=stores.namespace)
        report.rebuilt += len(batch)
    except InvalidInput:
        # Adapters validate before any I/O: find the records refused, keep the rest.
        for record in batch:
            try:
                stores.vectors.upsert([record], namespace=stores.namespace)
                report.rebuilt += 1
            except InvalidInput as exc:
                report.refused[record.id] = exc.message
    progress(len(batch))


def _owners(stores: Stores) -> Iterator[CatalogItem]:
    yield from stores.catalog.by_status(ItemStatus.INDEXED)
    yield from stores.catalog.by_status(ItemStatus.PENDING)
