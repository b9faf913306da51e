"""``reconcile`` repairs what a crash or a lost event leaves behind."""

from __future__ import annotations

import numpy as np
from fashion_search.ingest.reconcile import reconcile
from fashion_search.types import CatalogItem, ItemStatus, VectorRecord

from tests.fixtures.ingest import CountingBlobs, CountingEmbedder, IngestHome, jpeg_bytes


def _indexed(home: IngestHome, n: int) -> None:
    home.make().handle([home.put(f"r{i}.jpg", jpeg_bytes(40 + i)) for i in range(n)])


def test_consistent_stores_need_nothing(ingest_home: IngestHome) -> None:
    _indexed(ingest_home, 2)
    report = reconcile(ingest_home.make())
    assert report.consistent and report.indexed == report.vectors == 2


def test_orphan_vector_is_deleted(ingest_home: IngestHome) -> None:
    _indexed(ingest_home, 1)
    vec = np.ones(ingest_home.embedder.dim, dtype=np.float32)
    ingest_home.stores.vectors.upsert([VectorRecord("ghost", vec / np.linalg.norm(vec))])

    dry = reconcile(ingest_home.make(), fix=False)
    assert dry.orphan_vectors == ["ghost"] and ingest_home.stores.vectors.count() == 2

    report = reconcile(ingest_home.make())
    assert report.repaired["orphan_vectors_deleted"] == 1
    assert set(ingest_home.stores.vectors.iter_ids()) == {"r0"}


def test_item_stuck_in_pending_is_redriven(ingest_home: IngestHome) -> None:
    events = [ingest_home.put(f"p{i}.jpg", jpeg_bytes(50 + i)) for i in range(2)]
    ingest_home.vectors.fail_upserts = 1
    assert all(o.needs_retry for o in ingest_home.make().handle(events))  # the event is lost
    assert ingest_home.stores.catalog.count(ItemStatus.PENDING) == 2

    report = reconcile(ingest_home.make())
    assert report.pending == ["p0", "p1"]
    assert ingest_home.stores.catalog.count(ItemStatus.INDEXED) == 2
    assert set(ingest_home.stores.vectors.iter_ids()) == {"p0", "p1"}
    assert ingest_home.embedder.image_calls == [2]  # stored embeddings reused
    assert reconcile(ingest_home.make()).consistent


def test_pending_item_whose_blob_is_gone_gets_a_tombstone(ingest_home: IngestHome) -> None:
    ingest_home.stores.catalog.put(
        CatalogItem(image_id="lost", key="lost.jpg", status=ItemStatus.PENDING)
    )
    report = reconcile(ingest_home.make())
    assert report.repaired.get("tombstoned") == 1
    item = ingest_home.stores.catalog.get("lost")
    assert item is not None and item.status is ItemStatus.DELETED


def test_missing_vector_restored_from_the_catalog_without_the_model(
    ingest_home: IngestHome,
) -> None:
    _indexed(ingest_home, 2)
    ingest_home.stores.vectors.delete(["r1"])
    report = reconcile(ingest_home.make())
    assert report.missing_vectors == ["r1"]
    assert report.repaired["vectors_restored_from_catalog"] == 1
    assert ingest_home.embedder.image_calls == [2]  # no new model call
    restored = ingest_home.stores.vectors.fetch(["r1"])["r1"]
    assert restored.metadata["key"] == "r1.jpg"


def test_missing_vector_of_another_model_is_reembedded(ingest_home: IngestHome) -> None:
    _indexed(ingest_home, 1)
    ingest_home.stores.vectors.delete(["r0"])
    newer = CountingEmbedder(ingest_home.embedder.inner, model_id="model-v2")
    ingestor = ingest_home.make(embedder_=newer)  # the deployment moved to another model
    report = reconcile(ingestor)
    assert report.stale_model == ["r0"]
    assert newer.image_calls == [1]
    item = ingest_home.stores.catalog.get("r0")
    assert item is not None and item.model_id == "model-v2" and item.status is ItemStatus.INDEXED
    assert set(ingest_home.stores.vectors.iter_ids()) == {"r0"}


def test_stale_model_ids_are_reported_and_reembedded_on_request(ingest_home: IngestHome) -> None:
    _indexed(ingest_home, 2)
    newer = CountingEmbedder(ingest_home.embedder.inner, model_id="model-v2")
    ingestor = ingest_home.make(embedder_=newer)
    report = reconcile(ingestor)
    assert report.stale_model == ["r0", "r1"] and newer.image_calls == []
    reconcile(ingestor, reembed_stale=True)
    assert newer.image_calls == [2]
    assert reconcile(ingestor).stale_model == []


def test_image_deleted_while_nothing_ran_is_removed(ingest_home: IngestHome) -> None:
    _indexed(ingest_home, 3)
    (ingest_home.root / "r1.jpg").unlink()  # no watcher, no event: only the file is gone
    blobs = CountingBlobs(ingest_home.stores.blobs)
    ingest_home.stores.blobs = blobs

    dry = reconcile(ingest_home.make(), fix=False)
    assert dry.vanished_blobs == ["r1"] and not dry.consistent
    assert dry.as_dict()["vanished_blobs"] == {"count": 1, "sample": ["r1"]}
    assert ingest_home.stores.vectors.count() == 3  # a dry run changes nothing
    # One listing for the catalog, a head only to confirm what the listing lacks.
    assert sum(blobs.heads.values()) == 1

    report = reconcile(ingest_home.make())
    assert report.repaired["vanished_blobs_removed"] == 1
    assert set(ingest_home.stores.vectors.iter_ids()) == {"r0", "r2"}
    item = ingest_home.stores.catalog.get("r1")
    assert item is not None and item.status is ItemStatus.DELETED
    after = reconcile(ingest_home.make(), fix=False)
    assert after.consistent and after.vanished_blobs == []


def test_vanished_blob_with_a_missing_vector_is_removed_not_reembedded(
    ingest_home: IngestHome,
) -> None:
    _indexed(ingest_home, 2)
    ingest_home.stores.vectors.delete(["r0"])
    (ingest_home.root / "r0.jpg").unlink()
    calls = list(ingest_home.embedder.image_calls)
    report = reconcile(ingest_home.make())
    assert report.vanished_blobs == ["r0"]
    assert ingest_home.embedder.image_calls == calls
    item = ingest_home.stores.catalog.get("r0")
    assert item is not None and item.status is ItemStatus.DELETED
    assert reconcile(ingest_home.make(), fix=False).consistent
