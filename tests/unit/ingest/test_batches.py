"""Each batch is its own value, and what became of an event is said by a code.

One ``Ingestor`` handling two batches at once keeps their outcomes apart; the code of an outcome
(``OutcomeReason``) is what the code that follows decides on, while people read its text, which
the FAILED catalog items keep and which may be reworded without changing any decision."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fashion_search.ingest import BlobEvent, EventKind, OutcomeReason, OutcomeStatus
from fashion_search.ingest import outcome as outcome_module
from fashion_search.ingest.events import hex_token
from fashion_search.ingest.reconcile import reconcile
from fashion_search.model.base import ImageEmbeddings
from fashion_search.types import CatalogItem, ItemStatus

from tests.fixtures.ingest import CountingEmbedder, IngestHome, jpeg_bytes

WAIT_S = 20.0  # only a guard against hanging: nothing here measures time


class HoldingEmbedder(CountingEmbedder):
    """Holds the first image call in the model until ``go_on`` is set (or ``WAIT_S`` passes)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.in_model = threading.Event()
        self.go_on = threading.Event()
        self.released_by_go_on = False

    def embed_images(self, images: Sequence[Any]) -> ImageEmbeddings:
        if not self.in_model.is_set():
            self.in_model.set()
            self.released_by_go_on = self.go_on.wait(timeout=WAIT_S)
        return super().embed_images(images)


def test_two_batches_handled_at_once_by_one_ingestor_each_report_their_own_outcomes(
    ingest_home: IngestHome,
) -> None:
    embedder = HoldingEmbedder(ingest_home.embedder.inner)
    ingestor = ingest_home.make(embedder_=embedder)
    batch_a = [ingest_home.put(f"a{i}.jpg", jpeg_bytes(60 + i)) for i in range(3)]
    batch_b = [ingest_home.put(f"b{i}.jpg", jpeg_bytes(70 + i)) for i in range(2)]
    batch_b.append(BlobEvent(EventKind.REMOVED, "never-there.jpg", ordering_token=hex_token(9)))

    with ThreadPoolExecutor(max_workers=1) as pool:
        running_a = pool.submit(ingestor.handle, batch_a)
        assert embedder.in_model.wait(timeout=WAIT_S)  # batch A is in the model ...
        outcomes_b = ingestor.handle(batch_b)  # ... while batch B runs from start to end
        embedder.go_on.set()
        outcomes_a = running_a.result()

    assert embedder.released_by_go_on  # B did not wait for A to finish
    assert [(o.event.key, o.status) for o in outcomes_a] == [
        (f"a{i}.jpg", OutcomeStatus.INDEXED) for i in range(3)
    ]
    assert [(o.event.key, o.status) for o in outcomes_b] == [
        ("b0.jpg", OutcomeStatus.INDEXED),
        ("b1.jpg", OutcomeStatus.INDEXED),
        ("never-there.jpg", OutcomeStatus.DELETED),
    ]
    indexed = {it.image_id for it in ingest_home.stores.catalog.by_status(ItemStatus.INDEXED)}
    assert indexed == {"a0", "a1", "a2", "b0", "b1"}
    assert set(ingest_home.stores.vectors.iter_ids()) == indexed


def test_reconcile_tombstones_a_vanished_image_by_its_code_even_when_reworded(
    ingest_home: IngestHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PENDING item whose image is gone: the re-driven create says "object gone", and
    reconcile writes the tombstone whatever the words of that reason are today."""
    texts = outcome_module._TEXTS  # the wording is what this test changes
    monkeypatch.setitem(texts, OutcomeReason.OBJECT_GONE, "the picture has disappeared")
    ingest_home.stores.catalog.put(
        CatalogItem(image_id="lost", key="lost.jpg", status=ItemStatus.PENDING)
    )

    report = reconcile(ingest_home.make())

    assert report.repaired.get("tombstoned") == 1
    assert "lost" not in report.unresolved
    item = ingest_home.stores.catalog.get("lost")
    assert item is not None and item.status is ItemStatus.DELETED


def test_a_refused_image_fails_with_a_code_and_its_catalog_item_keeps_the_words(
    ingest_home: IngestHome,
) -> None:
    ev = ingest_home.put("bad.jpg", b"%PDF-1.4 not an image at all")
    ingestor = ingest_home.make()
    (outcome,) = ingestor.handle([ev])

    assert (outcome.status, outcome.code) == (OutcomeStatus.FAILED, OutcomeReason.BAD_IMAGE)
    item = ingest_home.stores.catalog.get("bad")
    assert item is not None and item.status is ItemStatus.FAILED
    assert item.reason == outcome.reason and item.reason  # readable text, not a code
    assert item.reason != OutcomeReason.BAD_IMAGE.value

    (replay,) = ingestor.handle([ev])
    assert (replay.status, replay.code) == (OutcomeStatus.SKIPPED, OutcomeReason.ALREADY_FAILED)
    assert item.reason in (replay.reason or "")


def test_a_failed_item_stored_before_reason_codes_still_stops_its_replay(
    ingest_home: IngestHome,
) -> None:
    """A catalog row written by an older version holds only its text; it reads as before."""
    ev = ingest_home.put("old.jpg", jpeg_bytes(3))
    ingest_home.stores.catalog.put(
        CatalogItem(
            image_id="old",
            key="old.jpg",
            status=ItemStatus.FAILED,
            etag=ev.etag,
            ordering_token=ev.ordering_token,
            reason="cannot identify image file <_io.BytesIO object at 0x7f>",
        )
    )

    (outcome,) = ingest_home.make().handle([ev])

    assert (outcome.status, outcome.code) == (OutcomeStatus.SKIPPED, OutcomeReason.ALREADY_FAILED)
    assert outcome.reason == (
        "duplicate: already failed (cannot identify image file <_io.BytesIO object at 0x7f>)"
    )
    assert ingest_home.embedder.image_calls == []


def test_object_gone_before_it_is_read_is_said_by_its_code(ingest_home: IngestHome) -> None:
    ev = BlobEvent(EventKind.CREATED, "never-there.jpg", ordering_token=hex_token(5))
    (outcome,) = ingest_home.make().handle([ev])
    assert (outcome.status, outcome.code) == (OutcomeStatus.SKIPPED, OutcomeReason.OBJECT_GONE)
    assert outcome.reason == "object no longer exists"  # the words users and logs know


@pytest.mark.parametrize("code", list(OutcomeReason))
def test_every_reason_code_reads_as_words(code: OutcomeReason) -> None:
    text = code.describe("DETAIL")
    assert text and "{}" not in text
    assert text != code.value  # words for people, not the identifier
