"""The rules that decide how an item looks in the other home and when a copy is "already there"."""

from __future__ import annotations

import numpy as np
import pytest
from fashion_search.errors import InvalidInput
from fashion_search.ingest.metadata import tags_from_user_metadata
from fashion_search.transfer.mapping import (
    blob_metadata,
    cosine,
    md5_etag,
    same_blob,
    same_item,
    target_item,
    target_key,
)
from fashion_search.types import BlobInfo, CatalogItem, ItemStatus


def _item(**kw: object) -> CatalogItem:
    base: dict[str, object] = {
        "image_id": "tops/a b",
        "key": "images/tops/a b.jpg",
        "status": ItemStatus.INDEXED,
        "bucket": "old-bucket",
        "tags": {"baseColour": "Red", "year": "2012"},
        "display_name": "Café shirt",
        "content_hash": "ab" * 32,
        "etag": "0123",
        "ordering_token": "0" * 31 + "9",
        "model_id": "m-1",
        "embedding": np.arange(1, 5, dtype=np.float32),
    }
    base.update(kw)
    return CatalogItem(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "source", "target", "expected"),
    [
        ("images/tops/a b.jpg", "images/", "", "tops/a b.jpg"),
        ("tops/a b.jpg", "", "images/", "images/tops/a b.jpg"),
        ("15970.jpg", "", "uploads/", "uploads/15970.jpg"),
    ],
)
def test_keys_keep_their_path_below_the_ingest_prefix(
    key: str, source: str, target: str, expected: str
) -> None:
    assert target_key(key, source_prefix=source, target_prefix=target) == expected


def test_the_target_row_starts_at_the_lowest_token_and_drops_home_specific_fields() -> None:
    item = _item()
    copy = target_item(
        item, key="tops/a b.jpg", target_prefix="", bucket=None, embedding=item.embedding
    )
    assert (copy.key, copy.bucket, copy.etag, copy.ordering_token) == (
        "tops/a b.jpg",
        None,
        None,
        "",
    )
    assert copy.tags == item.tags and copy.tags is not item.tags
    assert same_item(copy, _item(key="tops/a b.jpg", etag="other", ordering_token="F" * 32))


def test_a_key_whose_image_id_would_change_is_refused() -> None:
    with pytest.raises(InvalidInput, match="image id"):
        target_item(_item(), key="elsewhere/x.jpg", target_prefix="", bucket=None, embedding=None)


@pytest.mark.parametrize(
    "change",
    [
        {"status": ItemStatus.FAILED},
        {"tags": {"baseColour": "Blue", "year": "2012"}},
        {"display_name": None},
        {"content_hash": "cd" * 32},
        {"model_id": "m-2"},
        {"embedding": np.arange(2, 6, dtype=np.float32)},
        {"embedding": None},
    ],
)
def test_any_difference_that_matters_makes_items_differ(change: dict[str, object]) -> None:
    assert same_item(_item(), _item())
    assert not same_item(_item(), _item(**change))


def test_cosine() -> None:
    a = np.array([1.0, 0.0], dtype=np.float32)
    assert cosine(a, a * 3) == pytest.approx(1.0)
    assert cosine(a, np.array([0.0, 1.0], dtype=np.float32)) == pytest.approx(0.0)
    assert cosine(a, np.zeros(2, dtype=np.float32)) == -1.0
    assert cosine(a, np.ones(3, dtype=np.float32)) == -1.0


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (BlobInfo("k", 10, etag="aa"), BlobInfo("k", 10, etag="aa"), True),
        (BlobInfo("k", 10, etag="aa"), BlobInfo("k", 10, etag="bb"), False),
        (BlobInfo("k", 10, etag="aa"), BlobInfo("k", 11, etag="aa"), False),
        (BlobInfo("k", 10, etag="aa"), BlobInfo("k", 10, etag="cc-2"), True),  # multipart
        (BlobInfo("k", 10), BlobInfo("k", 10, etag="aa"), True),
    ],
)
def test_blobs_are_compared_by_size_and_md5_etag(a: BlobInfo, b: BlobInfo, same: bool) -> None:
    assert same_blob(a, b) is same


def test_blob_metadata_carries_given_tags_but_not_predicted_ones() -> None:
    source = BlobInfo("k", 1, metadata={"owner": "shop-7"})
    meta = blob_metadata(_item(), source)
    assert meta["owner"] == "shop-7"
    assert tags_from_user_metadata(meta) == (_item().tags, "Café shirt")
    predicted = blob_metadata(_item(tags_predicted=True), source)
    assert tags_from_user_metadata(predicted) == ({}, "Café shirt")


def test_blob_metadata_over_s3s_limit_is_left_out() -> None:
    huge = _item(tags={"note": "x" * 3000})
    assert blob_metadata(huge, BlobInfo("k", 1)) == {}


@pytest.mark.parametrize(
    ("info", "etag"),
    [
        (
            BlobInfo("k", 1, etag="d41d8cd98f00b204e9800998ecf8427e"),
            "d41d8cd98f00b204e9800998ecf8427e",
        ),
        (BlobInfo("k", 1, etag="9b2cf535f27731c974343645a3985328-3"), None),
        (BlobInfo("k", 1), None),
        (None, None),
    ],
)
def test_the_target_row_carries_the_etag_its_copy_will_have(
    info: BlobInfo | None, etag: str | None
) -> None:
    assert md5_etag(info) == etag
