"""A SigLIP bundle (Marqo-FashionSigLIP's architecture, random weights, exported from open_clip)
through the demo's pipeline: load a few demo products, ingest them, search by text and by image
over HTTP. The rankings are whatever random weights give; what must hold is the pipeline: a
768-d index, SigLIP's tokenizer and preprocessing used at ingest (pictures and names) and at
query time alike, so the API returns exactly the ranking the bundle computes directly (the
picture-only ranking, alpha 1: the words' side is not the model's)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from fashion_search.api import create_app
from fashion_search.demo import run as demo
from fashion_search.demo.catalog import iter_products
from fashion_search.ingest.documents import document_vector
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.runtime import build_ingestor
from fashion_search.settings import Settings
from fastapi.testclient import TestClient
from PIL import Image

from tests.fixtures.open_clip_models import OpenClipCase

pytestmark = pytest.mark.slow
PRODUCTS = 6
SEED = 5


@dataclass
class SiglipDemo:
    paths: demo.DemoPaths
    client: TestClient
    embedder: OnnxClipEmbedder
    counts: dict[str, int]


@pytest.fixture(scope="module")
def siglip_demo(
    siglip_case: OpenClipCase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SiglipDemo]:
    root = tmp_path_factory.mktemp("siglip-demo")
    paths = demo.DemoPaths(root)
    base = Settings(_env_file=None)
    settings = demo.demo_settings(base, data_dir=root, bundle=siglip_case.bundle)
    settings = settings.model_copy(
        update={"model": settings.model.model_copy(update={"intra_op_threads": 2})}
    )
    demo.ensure_catalog(paths, products=PRODUCTS, seed=SEED)
    ingestor = build_ingestor(settings)
    _, ingested = demo.load_and_ingest(ingestor, paths)
    embedder = OnnxClipEmbedder.from_bundle(siglip_case.bundle, intra_op_threads=2)
    with TestClient(create_app(settings)) as client:
        yield SiglipDemo(paths, client, embedder, ingested.counts)


def test_every_demo_image_is_indexed_at_siglips_dimension(siglip_demo: SiglipDemo) -> None:
    assert (siglip_demo.counts["indexed"], siglip_demo.counts["failed"]) == (PRODUCTS, 0)
    health = siglip_demo.client.get("/health").json()
    assert (health["dim"], health["index_size"]) == (768, PRODUCTS)
    assert health["model_id"] == siglip_demo.embedder.model_id


def _documents(siglip_demo: SiglipDemo) -> tuple[list[str], np.ndarray]:
    """The products' dense documents as the bundle computes them directly (picture + name)."""
    products = list(iter_products(products=PRODUCTS, seed=SEED))
    images = [(siglip_demo.paths.source_images / f"{p.id}.jpg").read_bytes() for p in products]
    pictures = siglip_demo.embedder.embed_images(images).vectors
    names = siglip_demo.embedder.embed_texts([p.display_name for p in products])
    docs = np.stack([document_vector(v, t) for v, t in zip(pictures, names, strict=True)])
    return [str(p.id) for p in products], docs


def test_text_search_returns_the_bundles_own_ranking(siglip_demo: SiglipDemo) -> None:
    ids, docs = _documents(siglip_demo)
    for text in ("red dress", "Men Blue_Striped Shirt!", "👟"):
        r = siglip_demo.client.post(
            "/get_image_by_text", json={"text": text, "top_k": 3, "alpha": 1.0}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        scores = docs @ siglip_demo.embedder.embed_texts([text])[0]
        assert [hit["image_id"] for hit in body["results"]] == [
            ids[i] for i in np.argsort(-scores)[:3]
        ]
        np.testing.assert_allclose(
            [hit["score"] for hit in body["results"]], np.sort(scores)[::-1][:3], atol=1e-4
        )
        assert body["model_id"] == siglip_demo.embedder.model_id


def test_image_search_finds_the_same_picture_first(siglip_demo: SiglipDemo) -> None:
    product = next(iter_products(products=PRODUCTS, seed=SEED))
    data = (siglip_demo.paths.source_images / f"{product.id}.jpg").read_bytes()
    buf = io.BytesIO()  # another encoding of the same pixels (the API drops the query's bytes)
    Image.open(io.BytesIO(data)).save(buf, format="PNG")
    r = siglip_demo.client.post(
        "/get_similar_images",
        files={"file": ("q.png", buf.getvalue(), "image/png")},
        data={"top_k": "2"},
    )
    assert r.status_code == 200, r.text
    top = r.json()["results"][0]
    assert top["image_id"] == str(product.id) and top["score"] > 0.999
