"""The ingest core against the real embedded stores and the tiny model: the RELIABILITY.md
"Ingest" cases that do not need AWS."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from fashion_search.ingest import BlobEvent, EventKind, OutcomeReason, OutcomeStatus
from fashion_search.ingest.events import hex_token
from fashion_search.types import ItemStatus

from tests.fixtures.ingest import IngestHome, jpeg_bytes


def _created(key: str, token: int, etag: str | None = None) -> BlobEvent:
    return BlobEvent(EventKind.CREATED, key, ordering_token=hex_token(token), etag=etag)


def _removed(key: str, token: int) -> BlobEvent:
    return BlobEvent(EventKind.REMOVED, key, ordering_token=hex_token(token))


def test_created_images_are_searchable_with_one_model_call(ingest_home: IngestHome) -> None:
    events = [ingest_home.put(f"img{i}.jpg", jpeg_bytes(i)) for i in range(5)]
    outcomes = ingest_home.make().handle(events)

    assert [o.status for o in outcomes] == [OutcomeStatus.INDEXED] * 5
    assert ingest_home.embedder.image_calls == [5]  # one batched call, not one per image
    assert ingest_home.vectors.upsert_calls == 1
    item = ingest_home.stores.catalog.get("img3")
    assert item is not None and item.status is ItemStatus.INDEXED
    assert item.model_id == ingest_home.embedder.model_id
    assert item.embedding is not None  # stored with the item, so the index can be rebuilt
    stored = ingest_home.stores.vectors.fetch(["img3"])["img3"]
    np.testing.assert_allclose(stored.values, item.embedding, atol=1e-6)
    assert stored.metadata["key"] == "img3.jpg"
    best = ingest_home.stores.vectors.query(item.embedding, top_k=1)
    assert best[0].id == "img3"


def test_same_event_twice_gives_one_vector_one_item_one_upsert(ingest_home: IngestHome) -> None:
    ev = ingest_home.put("a.jpg", jpeg_bytes(1))
    ingestor = ingest_home.make()
    first = ingestor.handle([ev, ev])  # duplicated inside one batch
    second = ingestor.handle([ev])  # and redelivered later

    assert [o.status for o in first] == [OutcomeStatus.INDEXED, OutcomeStatus.SKIPPED]
    assert second[0].status is OutcomeStatus.SKIPPED
    assert ingest_home.vectors.upserted["a"] == 1
    assert ingest_home.stores.vectors.count() == 1
    assert ingest_home.stores.catalog.count() == 1
    assert ingest_home.embedder.image_calls == [1]


def test_keys_with_spaces_and_unicode(ingest_home: IngestHome) -> None:
    ev = ingest_home.put("tops/red flower é.jpg", jpeg_bytes(7))
    (outcome,) = ingest_home.make().handle([ev])
    assert outcome.status is OutcomeStatus.INDEXED
    assert outcome.image_id == "tops/red flower é"
    item = ingest_home.stores.catalog.get("tops/red flower é")
    assert item is not None and item.key == "tops/red flower é.jpg"


def test_create_after_delete_out_of_order_does_not_resurrect(ingest_home: IngestHome) -> None:
    ingest_home.put("x.jpg", jpeg_bytes(2))
    ingestor = ingest_home.make()
    # The delete (token 20) arrives before the create it follows (token 10).
    assert ingestor.handle([_removed("x.jpg", 20)])[0].status is OutcomeStatus.DELETED
    late = ingestor.handle([_created("x.jpg", 10)])[0]

    assert (late.status, late.code) == (OutcomeStatus.SKIPPED, OutcomeReason.STALE)
    assert "stale" in (late.reason or "")
    assert ingest_home.stores.vectors.count() == 0
    item = ingest_home.stores.catalog.get("x")
    assert item is not None and item.status is ItemStatus.DELETED
    assert ingest_home.embedder.image_calls == []  # refused before any work


def test_delete_in_same_batch_after_create_wins(ingest_home: IngestHome) -> None:
    ingest_home.put("y.jpg", jpeg_bytes(3))
    outcomes = ingest_home.make().handle([_removed("y.jpg", 20), _created("y.jpg", 10)])
    assert outcomes[0].status is OutcomeStatus.DELETED
    assert outcomes[1].status is OutcomeStatus.SKIPPED
    assert ingest_home.stores.vectors.count() == 0


def test_removed_deletes_vector_and_item_and_twice_is_a_noop(ingest_home: IngestHome) -> None:
    ev = ingest_home.put("z.jpg", jpeg_bytes(4))
    ingestor = ingest_home.make()
    ingestor.handle([ev])
    ingest_home.stores.blobs.delete("z.jpg")
    gone = _removed("z.jpg", int(ev.ordering_token, 16) + 1)

    assert ingestor.handle([gone])[0].status is OutcomeStatus.DELETED
    again = ingestor.handle([gone])[0]
    assert again.status is OutcomeStatus.SKIPPED
    assert ingest_home.stores.vectors.count() == 0
    item = ingest_home.stores.catalog.get("z")
    assert item is not None and item.status is ItemStatus.DELETED
    # The earlier create, redelivered now, stays refused.
    assert ingestor.handle([ev])[0].status is OutcomeStatus.SKIPPED


def test_transient_upsert_failure_is_reported_then_retry_indexes(ingest_home: IngestHome) -> None:
    events = [ingest_home.put(f"t{i}.jpg", jpeg_bytes(10 + i)) for i in range(3)]
    ingestor = ingest_home.make()
    ingest_home.vectors.fail_upserts = 1  # Pinecone 429 after the catalog write

    first = ingestor.handle(events)
    assert all(o.needs_retry for o in first)
    assert all("429" in (o.reason or "") for o in first)
    item = ingest_home.stores.catalog.get("t0")
    assert item is not None and item.status is ItemStatus.PENDING

    second = ingestor.handle(events)  # the redelivery
    assert [o.status for o in second] == [OutcomeStatus.INDEXED] * 3
    assert ingest_home.stores.catalog.count(ItemStatus.INDEXED) == 3
    # The embedding kept in the PENDING item is reused: the model ran once in all.
    assert ingest_home.embedder.image_calls == [3]


def test_transient_vector_delete_failure_retries(ingest_home: IngestHome) -> None:
    ev = ingest_home.put("d.jpg", jpeg_bytes(5))
    ingestor = ingest_home.make()
    ingestor.handle([ev])
    ingest_home.vectors.fail_deletes = 1
    gone = _removed("d.jpg", int(ev.ordering_token, 16) + 1)
    assert ingestor.handle([gone])[0].needs_retry
    assert ingest_home.stores.vectors.count() == 1  # tombstone written, vector still there
    assert ingestor.handle([gone])[0].status is OutcomeStatus.SKIPPED  # replay still deletes
    assert ingest_home.stores.vectors.count() == 0


def _png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header declares 2.5 gigapixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _real_png(width: int, height: int) -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "reason_part"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image at all", ""),
        (jpeg_bytes(9)[:200], ""),  # truncated JPEG
        (b"GIF89a" + b"\x00" * 10, ""),  # a header and nothing else
        (_png_bomb(), ""),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", ""),
        # A real 1 x 20000 PNG: resizing its short side up to the model size would allocate
        # gigabytes (at 1 x 100000), and a MemoryError used to make the whole batch retry.
        (_real_png(1, 20_000), "aspect ratio"),
    ],
    ids=["zero-bytes", "not-an-image", "truncated", "corrupt-gif", "bomb", "eps", "1x20000"],
)
def test_bad_objects_fail_with_a_reason_and_are_not_retried(
    ingest_home: IngestHome, data: bytes, reason_part: str
) -> None:
    ev = ingest_home.put("bad.jpg", data)
    ingestor = ingest_home.make()
    (outcome,) = ingestor.handle([ev])

    assert outcome.status is OutcomeStatus.FAILED and not outcome.needs_retry
    assert reason_part in (outcome.reason or "") and outcome.reason
    item = ingest_home.stores.catalog.get("bad")
    assert item is not None and item.status is ItemStatus.FAILED and item.reason
    calls = len(ingest_home.embedder.image_calls)
    # A redelivery is recognised: no second attempt, no retry storm.
    assert ingestor.handle([ev])[0].status is OutcomeStatus.SKIPPED
    assert len(ingest_home.embedder.image_calls) == calls
    assert ingest_home.stores.vectors.count() == 0


def test_oversized_object_fails_without_reading_it_all(ingest_home: IngestHome) -> None:
    ingest_home.settings.limits.max_blob_bytes = 1000
    ev = ingest_home.put("big.jpg", jpeg_bytes(1, size=256))
    (outcome,) = ingest_home.make().handle([ev])
    assert outcome.status is OutcomeStatus.FAILED
    assert ingest_home.embedder.image_calls == []


def test_bad_image_in_a_batch_does_not_fail_the_others(ingest_home: IngestHome) -> None:
    events = [ingest_home.put("ok1.jpg", jpeg_bytes(1)), ingest_home.put("no.jpg", b"hello")]
    events.append(ingest_home.put("ok2.jpg", jpeg_bytes(2)))
    statuses = [o.status for o in ingest_home.make().handle(events)]
    assert statuses == [OutcomeStatus.INDEXED, OutcomeStatus.FAILED, OutcomeStatus.INDEXED]


def test_crash_after_k_of_n_then_rerun_leaves_catalog_and_index_equal(
    ingest_home: IngestHome,
) -> None:
    events = [ingest_home.put(f"c{i}.jpg", jpeg_bytes(20 + i)) for i in range(6)]
    ingestor = ingest_home.make(upsert_chunk=2)
    ingest_home.vectors.crash_after = 3
    with pytest.raises(KeyboardInterrupt):
        ingestor.handle(events)
    ingest_home.vectors.crash_after = None

    ingest_home.make(upsert_chunk=2).handle(events)  # a fresh worker gets the redelivery

    catalog = ingest_home.stores.catalog
    indexed = {it.image_id for it in catalog.by_status(ItemStatus.INDEXED)}
    assert indexed == {f"c{i}" for i in range(6)}
    assert set(ingest_home.stores.vectors.iter_ids()) == indexed
    assert catalog.count(ItemStatus.PENDING) == 0


def test_overwritten_object_is_reembedded(ingest_home: IngestHome) -> None:
    ingestor = ingest_home.make()
    first = ingest_home.put("o.jpg", jpeg_bytes(1))
    ingestor.handle([first])
    before = ingest_home.stores.vectors.fetch(["o"])["o"].values
    second = _created("o.jpg", int(first.ordering_token, 16) + 1)
    ingest_home.stores.blobs.put("o.jpg", jpeg_bytes(99), content_type="image/jpeg")
    assert ingestor.handle([second])[0].status is OutcomeStatus.INDEXED
    after = ingest_home.stores.vectors.fetch(["o"])["o"].values
    assert not np.allclose(before, after)
    assert ingest_home.stores.vectors.count() == 1


def test_events_outside_the_ingest_prefix_are_skipped(ingest_home: IngestHome) -> None:
    ingest_home.stores.ingest_prefix = "images/"
    ev = ingest_home.put("thumbnails/a.jpg", jpeg_bytes(1))
    (outcome,) = ingest_home.make().handle([ev])
    assert outcome.status is OutcomeStatus.SKIPPED
    assert ingest_home.stores.catalog.count() == 0


def test_object_gone_before_ingest_is_skipped(ingest_home: IngestHome) -> None:
    (outcome,) = ingest_home.make().handle([_created("never-there.jpg", 5)])
    assert outcome.status is OutcomeStatus.SKIPPED and not outcome.needs_retry
