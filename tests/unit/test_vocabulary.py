"""Calibration and example queries on the demo catalog with the committed demo model, written as
ingest writes it: the threshold does not move when names gain brand words the model cannot
read, nonsense is flagged weak, and every example query finds a product it describes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fashion_search.demo.catalog import iter_products, render_product
from fashion_search.home import open_stores
from fashion_search.ingest.documents import vector_record
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.search import Searcher
from fashion_search.settings import EmbeddedSettings, Settings
from fashion_search.types import CatalogItem, ItemStatus

DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "demo"
PRODUCTS = 240


@pytest.fixture(scope="module")
def demo_embedder() -> OnnxClipEmbedder:
    return OnnxClipEmbedder.from_bundle(DEMO_MODEL, intra_op_threads=1)


def demo_home(root: Path, embedder: OnnxClipEmbedder, *, brands: bool) -> Searcher:
    settings = Settings(_env_file=None, embedded=EmbeddedSettings(data_dir=root))  # type: ignore[call-arg]
    stores = open_stores(settings, dimension=embedder.dim)
    products = list(iter_products(products=PRODUCTS, brands=brands))
    images = embedder.embed_images([render_product(p) for p in products]).vectors
    names = embedder.embed_texts([p.display_name for p in products])
    for p, image, name in zip(products, images, names, strict=True):
        row = p.row()
        item = CatalogItem(
            image_id=row["id"],
            key=f"{row['id']}.jpg",
            status=ItemStatus.INDEXED,
            tags={k: v for k, v in row.items() if k not in ("id", "productDisplayName")},
            display_name=p.display_name,
            model_id=embedder.model_id,
            embedding=image,
            text_embedding=name,
        )
        stores.catalog.put(item)
        stores.vectors.upsert([vector_record(item)])
    return Searcher(stores, embedder, settings=settings)


@pytest.fixture(scope="module")
def homes(
    tmp_path_factory: pytest.TempPathFactory, demo_embedder: OnnxClipEmbedder
) -> Iterator[dict[str, Searcher]]:
    out = {
        kind: demo_home(tmp_path_factory.mktemp(kind), demo_embedder, brands=kind == "brands")
        for kind in ("plain", "brands")
    }
    yield out
    for searcher in out.values():
        searcher.stores.close()


def test_the_threshold_holds_when_names_carry_unknown_words(homes: dict[str, Searcher]) -> None:
    plain, brands = homes["plain"].weak_threshold(), homes["brands"].weak_threshold()
    assert plain is not None and brands is not None
    assert abs(plain - brands) < 0.05


@pytest.mark.parametrize("kind", ["plain", "brands"])
def test_nonsense_and_absent_materials_are_weak_described_products_are_not(
    homes: dict[str, Searcher], kind: str
) -> None:
    searcher = homes[kind]
    for text in ("xyzzy", "leather jacket"):
        assert searcher.by_text(text, top_k=3).weak_match, text
    for text in ("navy striped summer dress", "red dress", "yellow checked skirt"):
        assert not searcher.by_text(text, top_k=3).weak_match, text


def test_every_example_query_finds_what_it_names(homes: dict[str, Searcher]) -> None:
    searcher = homes["plain"]
    examples = searcher.example_queries()
    assert len(examples) == 6
    for text in examples:
        result = searcher.by_text(text, top_k=1)
        hit = result.hits[0]
        assert f"{hit.tags['baseColour']} {hit.tags['articleType']}".lower() == text
        assert not result.weak_match


def test_a_brand_only_the_names_hold_finds_its_products(homes: dict[str, Searcher]) -> None:
    searcher = homes["brands"]
    for brand in ("wrangler", "hidesign", "puma"):
        hits = searcher.by_text(brand, top_k=3).hits
        assert hits and all(
            h.display_name and h.display_name.lower().startswith(brand) for h in hits
        )
