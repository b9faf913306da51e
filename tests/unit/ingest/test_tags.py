"""Where an image's tags come from: user metadata, the loader's catalog row, or zero-shot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from fashion_search.ingest.metadata import tags_to_user_metadata
from fashion_search.ingest.tags import TagPredictor, VocabularyCache
from fashion_search.model.base import ImageEmbeddings, l2_normalise
from fashion_search.types import CatalogItem, ItemStatus, Vector

from tests.fixtures.ingest import IngestHome, jpeg_bytes


class KeywordEmbedder:
    """Texts map to a basis vector by the colour word they contain: a model whose zero-shot
    answer is known, to check the predictor's arithmetic and caching."""

    WORDS = ("Red", "Blue", "Green", "Shirts", "Jeans")

    def __init__(self) -> None:
        self.text_calls: list[int] = []

    @property
    def model_id(self) -> str:
        return "keywords"

    @property
    def dim(self) -> int:
        return len(self.WORDS)

    def embed_texts(self, texts: Sequence[str]) -> Vector:
        self.text_calls.append(len(texts))
        out = np.full((len(texts), self.dim), 0.01, dtype=np.float32)
        for i, text in enumerate(texts):
            for j, word in enumerate(self.WORDS):
                if word in text:
                    out[i, j] = 1.0
        return l2_normalise(out)

    def embed_images(self, images: Sequence[object]) -> ImageEmbeddings:
        raise AssertionError("not used")


def test_predictor_picks_the_closest_value_per_field_and_caches_prompts() -> None:
    embedder = KeywordEmbedder()
    predictor = TagPredictor(embedder)
    vocabulary = {"baseColour": ["Red", "Blue", "Green"], "articleType": ["Shirts", "Jeans"]}
    image = l2_normalise(np.array([[0.1, 0.9, 0.0, 0.0, 0.8]], dtype=np.float32))
    assert predictor.predict(image, vocabulary) == [{"baseColour": "Blue", "articleType": "Jeans"}]
    calls = len(embedder.text_calls)
    predictor.predict(image, vocabulary)
    assert len(embedder.text_calls) == calls  # prompt embeddings cached


def test_a_field_with_a_single_value_is_not_predicted() -> None:
    image = l2_normalise(np.ones((1, 5), dtype=np.float32))
    assert TagPredictor(KeywordEmbedder()).predict(image, {"baseColour": ["Red"]}) == [{}]


def test_vocabulary_is_reread_after_its_ttl() -> None:
    loads: list[int] = []
    now = [0.0]

    def load() -> dict[str, list[str]]:
        loads.append(1)
        return {}

    cache = VocabularyCache(load, ttl_s=10, clock=lambda: now[0])
    cache.get()
    now[0] = 5
    cache.get()
    now[0] = 11
    cache.get()
    assert len(loads) == 2


def test_tags_from_user_metadata(ingest_home: IngestHome) -> None:
    meta = tags_to_user_metadata({"baseColour": "Navy Blue", "year": "2012"}, "Navy tee")
    ev = ingest_home.put("m.jpg", jpeg_bytes(1), metadata=meta)
    ingest_home.make().handle([ev])
    item = ingest_home.stores.catalog.get("m")
    assert item is not None
    assert item.tags == {"baseColour": "Navy Blue", "year": "2012"}
    assert (item.display_name, item.tags_predicted) == ("Navy tee", False)
    md = ingest_home.stores.vectors.fetch(["m"])["m"].metadata
    assert md["baseColour"] == "Navy Blue" and md["year"] == 2012
    assert md["display_name"] == "Navy tee" and md["tags_predicted"] is False


def test_tags_from_a_catalog_row_written_earlier_by_the_loader(ingest_home: IngestHome) -> None:
    ingest_home.stores.catalog.put(
        CatalogItem(
            image_id="15970",
            key="15970.jpg",
            status=ItemStatus.PENDING,
            tags={"articleType": "Shirts"},
            display_name="Turtle Check Men Navy Blue Shirt",
        )
    )
    ev = ingest_home.put("15970.jpg", jpeg_bytes(3))
    ingest_home.make().handle([ev])
    item = ingest_home.stores.catalog.get("15970")
    assert item is not None and item.status is ItemStatus.INDEXED
    assert item.tags == {"articleType": "Shirts"} and not item.tags_predicted
    md = ingest_home.stores.vectors.fetch(["15970"])["15970"].metadata
    assert md["display_name"] == "Turtle Check Men Navy Blue Shirt"


def test_untagged_images_get_predicted_tags_from_the_vocabulary(ingest_home: IngestHome) -> None:
    catalog = ingest_home.stores.catalog
    for i, (colour, kind) in enumerate([("Red", "Shirts"), ("Blue", "Jeans"), ("Green", "Tops")]):
        catalog.put(
            CatalogItem(
                image_id=f"known{i}",
                key=f"known{i}.jpg",
                status=ItemStatus.FAILED,
                tags={"baseColour": colour, "articleType": kind, "year": "2012"},
            )
        )
    ev = ingest_home.put("new.jpg", jpeg_bytes(5))
    ingest_home.make().handle([ev])
    item = catalog.get("new")
    assert item is not None and item.tags_predicted
    assert item.tags["baseColour"] in {"Red", "Blue", "Green"}
    assert item.tags["articleType"] in {"Shirts", "Jeans", "Tops"}
    assert "year" not in item.tags  # only fields with prompt templates are guessed
    md = ingest_home.stores.vectors.fetch(["new"])["new"].metadata
    assert md["tags_predicted"] is True and md["baseColour"] == item.tags["baseColour"]


def test_no_vocabulary_means_no_tags_and_not_predicted(ingest_home: IngestHome) -> None:
    ingest_home.make().handle([ingest_home.put("plain.jpg", jpeg_bytes(6))])
    item = ingest_home.stores.catalog.get("plain")
    assert item is not None and item.tags == {} and not item.tags_predicted
