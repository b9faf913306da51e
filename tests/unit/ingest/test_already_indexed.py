"""An S3 event for an object the catalog already holds INDEXED (same eTag, same model, stored
embedding, same tags) does nothing: the case of every image ``fashion-search migrate`` copies,
whose row arrives INDEXED with its embedding before the copy's event does."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from fashion_search.ingest import BlobEvent, EventKind, OutcomeStatus
from fashion_search.ingest.events import hex_token
from fashion_search.ingest.metadata import tags_to_user_metadata, vector_metadata
from fashion_search.types import CatalogItem, ItemStatus, VectorRecord

from tests.fixtures.ingest import CountingBlobs, IngestHome, jpeg_bytes

TAGS = {"baseColour": "Red", "articleType": "Tshirts"}
NAME = "Red crew-neck tee"


def _migrated(home: IngestHome, key: str, data: bytes, **changes: Any) -> CatalogItem:
    """Put the blob (tags as user metadata) and the row migrate would write for it: INDEXED,
    its embedding and eTag, the lowest ordering token; the vector goes into the index too."""
    info = home.stores.blobs.put(
        key, data, content_type="image/jpeg", metadata=tags_to_user_metadata(TAGS, NAME)
    )
    assert info.etag
    vector = home.embedder.inner.embed_images([data]).vectors[0]  # not counted
    row = CatalogItem(
        image_id=key.rsplit(".", 1)[0],
        key=key,
        status=ItemStatus.INDEXED,
        tags=dict(TAGS),
        display_name=NAME,
        content_hash=hashlib.sha256(data).hexdigest(),
        etag=info.etag,
        ordering_token="",
        model_id=home.embedder.model_id,
        embedding=vector,
    )
    row = dataclasses.replace(row, **changes)
    home.stores.catalog.put(row)
    home.vectors.inner.upsert([VectorRecord(row.image_id, vector, vector_metadata(row))])
    return row


def _event(home: IngestHome, key: str, token: int) -> BlobEvent:
    info = home.stores.blobs.head(key)
    assert info is not None
    return BlobEvent(EventKind.CREATED, key, ordering_token=hex_token(token), etag=info.etag)


def _counting(home: IngestHome) -> CountingBlobs:
    blobs = CountingBlobs(home.stores.blobs)
    home.stores.blobs = blobs
    return blobs


def test_copied_object_already_indexed_is_not_read_or_written(ingest_home: IngestHome) -> None:
    row = _migrated(ingest_home, "m.jpg", jpeg_bytes(5))
    blobs = _counting(ingest_home)

    (outcome,) = ingest_home.make().handle([_event(ingest_home, "m.jpg", 7)])

    assert outcome.status is OutcomeStatus.SKIPPED
    assert outcome.reason == "already indexed (same eTag)"
    assert blobs.gets["m.jpg"] == 0
    assert ingest_home.vectors.upsert_calls == 0
    assert ingest_home.embedder.image_calls == []
    stored = ingest_home.stores.catalog.get("m")
    assert stored is not None and stored.status is ItemStatus.INDEXED
    # No catalog write: the row keeps migrate's token and timestamp.
    assert (stored.ordering_token, stored.updated_at) == ("", row.updated_at)


def test_object_without_tag_metadata_keeps_the_stored_tags(ingest_home: IngestHome) -> None:
    _migrated(ingest_home, "p.jpg", jpeg_bytes(6))
    ingest_home.stores.blobs.put("p.jpg", jpeg_bytes(6), content_type="image/jpeg")  # same eTag
    blobs = _counting(ingest_home)

    (outcome,) = ingest_home.make().handle([_event(ingest_home, "p.jpg", 7)])

    assert outcome.status is OutcomeStatus.SKIPPED and blobs.gets["p.jpg"] == 0
    stored = ingest_home.stores.catalog.get("p")
    assert stored is not None and stored.tags == TAGS and stored.display_name == NAME


@pytest.mark.parametrize(
    "changes",
    [
        {"etag": "0" * 32},  # the object was overwritten since
        {"model_id": "another-model"},
        {"embedding": None},
        {"tags": {"baseColour": "Blue", "articleType": "Tshirts"}},  # metadata says otherwise
        {"tags_predicted": True},
        {"display_name": "Something else"},
        {"status": ItemStatus.PENDING},
    ],
    ids=["etag", "model", "no-embedding", "tags", "predicted", "name", "pending"],
)
def test_anything_different_is_ingested_again(
    ingest_home: IngestHome, changes: dict[str, Any]
) -> None:
    _migrated(ingest_home, "q.jpg", jpeg_bytes(8), **changes)
    blobs = _counting(ingest_home)

    (outcome,) = ingest_home.make().handle([_event(ingest_home, "q.jpg", 7)])

    assert outcome.status is OutcomeStatus.INDEXED
    assert blobs.gets["q.jpg"] == 1
    assert ingest_home.vectors.upserted["q"] == 1
    stored = ingest_home.stores.catalog.get("q")
    assert stored is not None and stored.ordering_token == hex_token(7)
    assert (stored.tags, stored.display_name, stored.tags_predicted) == (TAGS, NAME, False)
