from __future__ import annotations

from fashion_search.ingest.metadata import (
    tags_from_user_metadata,
    tags_to_user_metadata,
    vector_metadata,
)
from fashion_search.stores.blobs import normalise_metadata
from fashion_search.types import CatalogItem


def test_tags_survive_the_trip_through_s3_user_metadata() -> None:
    tags = {"articleType": "Tshirts", "baseColour": "Navy Blue", "year": "2012", "brand": "Zoë"}
    meta = tags_to_user_metadata(tags, "Zoë's 100% cotton, tee")
    # What S3 would store: lower-cased names, printable ASCII values (else it refuses them).
    stored = normalise_metadata(meta)
    back, name = tags_from_user_metadata(stored)
    assert back == tags
    assert name == "Zoë's 100% cotton, tee"


def test_hand_set_metadata_and_unrelated_names() -> None:
    tags, name = tags_from_user_metadata(
        {"x-amz-meta-BaseColour": "Red", "uploaded-by": "bob", "articletype": " "}
    )
    assert tags == {"baseColour": "Red"}
    assert name is None


def test_vector_metadata_types() -> None:
    item = CatalogItem(
        image_id="1",
        key="images/1.jpg",
        tags={"year": "2012", "season": "Fall", "key": "evil"},
        display_name="Shirt",
        content_hash="ab",
        tags_predicted=True,
    )
    md = vector_metadata(item)
    assert md == {
        "key": "images/1.jpg",
        "tags_predicted": True,
        "display_name": "Shirt",
        "content_hash": "ab",
        "year": 2012,
        "season": "Fall",
    }
    assert None not in md.values()
