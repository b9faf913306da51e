"""The search core: weights, own-image exclusion, stored embeddings, catalog join."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fashion_search.errors import InvalidInput, NotFound, PayloadTooLarge
from fashion_search.home import Stores, open_stores
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.query import Query
from fashion_search.search import Searcher, combine
from fashion_search.types import ItemStatus

from tests.unit.api.conftest import api_settings, fill, make_image


@pytest.fixture
def setup(
    tmp_path: Path, tiny_embedder: OnnxClipEmbedder
) -> Iterator[tuple[Searcher, dict[str, bytes]]]:
    settings = api_settings(tmp_path / "data")
    with open_stores(settings, dimension=tiny_embedder.dim) as stores:
        images = fill(stores, tiny_embedder)
        yield Searcher(stores, tiny_embedder, settings=settings), images


def stores_of(searcher: Searcher) -> Stores:
    return searcher.stores


def test_combine_is_the_normalised_weighted_sum() -> None:
    a = np.array([1, 0, 0], np.float32)
    b = np.array([0, 2, 0], np.float32)  # normalised before weighting
    n = np.array([0, 0, 1], np.float32)
    got = combine([(1.0, a), (3.0, b), (-0.5, n)])
    want = np.array([1, 3, -0.5], np.float32)
    np.testing.assert_allclose(got, want / np.linalg.norm(want), rtol=1e-6)


@pytest.mark.parametrize("parts", [[], [(-1.0, np.ones(3, np.float32))]])
def test_combine_needs_a_positive_part(parts: list[tuple[float, np.ndarray]]) -> None:
    with pytest.raises(InvalidInput):
        combine(parts)


def test_combine_refuses_vectors_that_cancel() -> None:
    v = np.array([0.6, 0.8], np.float32)
    with pytest.raises(InvalidInput, match="cancel"):
        combine([(1.0, v), (-1.0, v)])


def test_every_catalog_copy_of_the_query_image_is_excluded(
    setup: tuple[Searcher, dict[str, bytes]],
) -> None:
    searcher, images = setup
    stores = stores_of(searcher)
    # A second catalog item with the same bytes (same content hash) under another key.
    item = stores.catalog.get("1002")
    assert item is not None
    stores.catalog.put(dataclasses.replace(item, image_id="copy-of-1002", key="copy.png"))
    vec = searcher.embedder.embed_images([images["1002"]]).vectors[0]
    from fashion_search.types import VectorRecord

    stores.vectors.upsert(
        [VectorRecord(id="copy-of-1002", values=vec, metadata={"key": "copy.png"})]
    )
    ids = [h.image_id for h in searcher.by_image(images["1002"], top_k=5).hits]
    assert len(ids) == 5
    assert "1002" not in ids and "copy-of-1002" not in ids


def test_items_not_indexed_and_orphan_vectors_are_skipped(
    setup: tuple[Searcher, dict[str, bytes]],
) -> None:
    searcher, _ = setup
    stores = stores_of(searcher)
    stores.catalog.update_status("1001", ItemStatus.PENDING)
    stores.catalog.delete("1003")  # the vector stays: an orphan until reconcile
    ids = {h.image_id for h in searcher.by_text("anything", top_k=10).hits}
    assert ids == {"1002", "1004", "1005", "1006"}


def test_image_id_falls_back_to_the_index_when_the_catalog_has_no_embedding(
    setup: tuple[Searcher, dict[str, bytes]],
) -> None:
    searcher, images = setup
    stores = stores_of(searcher)
    item = stores.catalog.get("1005")
    assert item is not None
    stores.catalog.put(dataclasses.replace(item, embedding=None))
    by_id = [h.image_id for h in searcher.search(Query(image_id="1005", w_text=0.0)).hits]
    by_bytes = [h.image_id for h in searcher.by_image(images["1005"]).hits]
    assert by_id == by_bytes and len(by_id) == 3
    stores.vectors.delete(["1005"])
    with pytest.raises(NotFound, match="no stored embedding"):
        searcher.search(Query(image_id="1005"))


def test_embedding_of_another_model_is_not_used(setup: tuple[Searcher, dict[str, bytes]]) -> None:
    searcher, images = setup
    stores = stores_of(searcher)
    item = stores.catalog.get("1004")
    assert item is not None and item.embedding is not None
    wrong = np.roll(item.embedding, 3)
    stores.catalog.put(dataclasses.replace(item, embedding=wrong, model_id="other-model"))
    by_id = [h.image_id for h in searcher.search(Query(image_id="1004")).hits]
    assert by_id == [h.image_id for h in searcher.by_image(images["1004"]).hits]


@pytest.mark.parametrize("top_k", [0, 101])
def test_top_k_bounds(setup: tuple[Searcher, dict[str, bytes]], top_k: int) -> None:
    searcher, _ = setup
    with pytest.raises(InvalidInput) as info:
        searcher.by_text("dress", top_k=top_k)
    assert info.value.field == "top_k"


def test_query_needs_one_image_source_at_most(setup: tuple[Searcher, dict[str, bytes]]) -> None:
    searcher, images = setup
    with pytest.raises(InvalidInput, match="at most one"):
        searcher.search(Query(image=images["1001"], image_id="1002"))
    with pytest.raises(InvalidInput, match="needs an image or a text"):
        searcher.search(Query(negative_text="stripes"))


def test_upload_over_the_cap_is_too_large(setup: tuple[Searcher, dict[str, bytes]]) -> None:
    searcher, _ = setup
    big = make_image((1, 2, 3), stripes=False) + b"\0" * (searcher.settings.limits.max_upload_bytes)
    with pytest.raises(PayloadTooLarge):
        searcher.by_image(big)


def test_url_queries_use_the_injected_fetcher(
    setup: tuple[Searcher, dict[str, bytes]],
) -> None:
    searcher, images = setup
    asked: list[str] = []

    def fetch(url: str) -> bytes:
        asked.append(url)
        return images["1006"]

    s = Searcher(searcher.stores, searcher.embedder, settings=searcher.settings, fetch=fetch)
    hits = s.search(Query(image_url="https://shop.example/cap.png", w_text=0.0)).hits
    assert asked == ["https://shop.example/cap.png"]
    assert "1006" not in [h.image_id for h in hits] and len(hits) == 3
