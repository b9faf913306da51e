"""Hybrid search, the same contract in both homes: the embedded one (SQLite FTS5 beside the
exact scan) and AWS (DynamoDB under moto, Pinecone's sparse-dense query through the real SDK
against tests/fakes/pinecone_api.py).

Words only a product's name holds (a brand) find it; an exact name finds its product; the fused
ranking equals a brute-force reference computed from the definitions in ``lexical`` and
``ingest.documents``; a query nothing matches is flagged weak.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fashion_search.home import Stores, open_stores
from fashion_search.ingest.documents import document_vector, lexical_text, vector_record
from fashion_search.lexical import LexicalStats, lexical_score, query_weights, tokenize
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.search import Searcher
from fashion_search.settings import AwsSettings, EmbeddedSettings, Home, SearchSettings, Settings
from fashion_search.types import CatalogItem, ItemStatus
from fashion_search.vocabulary import load_stats, refresh_lexical_stats

from tests.fakes.pinecone_api import FakePinecone
from tests.fixtures.aws import REGION
from tests.unit.api.conftest import make_image

# (id, display name, tags, colour, stripes): brand words stand only in the names.
PRODUCTS: list[tuple[str, str, dict[str, str], tuple[int, int, int], bool]] = [
    ("p01", "Wrangler Men Blue Slim Fit Jeans", {"articleType": "Jeans", "baseColour": "Blue"},
     (30, 60, 200), False),
    ("p02", "Puma Men Red Sports Tshirt", {"articleType": "Tshirts", "baseColour": "Red"},
     (210, 30, 30), False),
    ("p03", "Nike Women Black Running Shoes", {"articleType": "Sports Shoes",
     "baseColour": "Black"}, (20, 20, 20), False),
    ("p04", "Levis Women Blue Skinny Jeans", {"articleType": "Jeans", "baseColour": "Blue"},
     (40, 70, 190), True),
    ("p05", "Catwalk Women Red Heels", {"articleType": "Heels", "baseColour": "Red"},
     (190, 20, 40), True),
    ("p06", "Adidas Men White Striped Tshirt", {"articleType": "Tshirts", "baseColour": "White"},
     (240, 240, 240), True),
    ("p07", "Fastrack Unisex Black Watch", {"articleType": "Watches", "baseColour": "Black"},
     (10, 10, 30), True),
    ("p08", "Mango Women Green Summer Dress", {"articleType": "Dresses", "baseColour": "Green"},
     (30, 160, 60), False),
    ("p09", "Women Navy Blue Striped Dress", {"articleType": "Dresses",
     "baseColour": "Navy Blue"}, (20, 30, 90), True),
    ("p10", "Roadster Men Grey Hoodie", {"articleType": "Sweatshirts", "baseColour": "Grey"},
     (128, 128, 128), False),
    ("p11", "Baggit Women Brown Handbag", {"articleType": "Handbags", "baseColour": "Brown"},
     (110, 70, 30), False),
    ("p12", "Spykar Men Olive Cargo Shorts", {"articleType": "Shorts", "baseColour": "Olive"},
     (110, 120, 40), True),
]  # fmt: skip
INDEX = "fashion-hybrid-test"


def fill(stores: Stores, embedder: OnnxClipEmbedder) -> None:
    """Items as ingest writes them: image and name vectors in the catalog, the product
    document (dense + sparse) in the index."""
    names = embedder.embed_texts([p[1] for p in PRODUCTS])
    for (image_id, name, tags, colour, stripes), name_vector in zip(PRODUCTS, names, strict=True):
        data = make_image(colour, stripes=stripes)
        key = stores.ingest_prefix + f"{image_id}.png"
        stores.blobs.put(key, data, content_type="image/png")
        item = CatalogItem(
            image_id=image_id,
            key=key,
            status=ItemStatus.INDEXED,
            tags=dict(tags),
            display_name=name,
            model_id=embedder.model_id,
            embedding=embedder.embed_images([data]).vectors[0],
            text_embedding=name_vector,
        )
        stores.catalog.put(item)
        stores.vectors.upsert([vector_record(item)], namespace=stores.namespace)


@pytest.fixture(params=["embedded", "aws"])
def home(
    request: pytest.FixtureRequest, tmp_path: Path, tiny_embedder: OnnxClipEmbedder
) -> Iterator[Searcher]:
    search = SearchSettings(alpha=0.5)
    if request.param == "embedded":
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            embedded=EmbeddedSettings(data_dir=tmp_path / "data"),
            search=search,
        )
    else:
        fake: FakePinecone = request.getfixturevalue("pinecone_fake")
        bucket = request.getfixturevalue("s3_bucket")
        table = request.getfixturevalue("dynamodb_catalog_table")
        name = f"{INDEX}-{uuid.uuid4().hex[:8]}"
        fake.create_index(name, dimension=tiny_embedder.dim, metric="dotproduct")
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            home=Home.AWS,
            aws=AwsSettings(
                region=REGION,
                bucket=bucket,
                table=table,
                pinecone_index=name,
                pinecone_api_key=fake.api_key,  # type: ignore[arg-type]
                pinecone_host=fake.host_of(name),
            ),
            search=search,
        )
    stores = open_stores(settings, dimension=tiny_embedder.dim)
    fill(stores, tiny_embedder)
    # What `reindex` and `migrate` do after copying: fit and store the statistics where the
    # index matches words itself (Pinecone); the embedded home counts them live (FTS5).
    written = refresh_lexical_stats(stores, settings)
    assert written == (None if request.param == "embedded" else settings.search.lexical_stats_key)
    yield Searcher(stores, tiny_embedder, settings=settings)
    stores.close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [("wrangler", "p01"), ("Levis jeans", "p04"), ("baggit", "p11"), ("spykar shorts", "p12")],
)
def test_a_brand_word_finds_its_product(home: Searcher, query: str, expected: str) -> None:
    result = home.by_text(query, top_k=3)
    assert result.hits[0].image_id == expected
    assert not result.weak_match  # the words match: an answer, not a guess
    assert result.hits[0].lexical_score is not None and result.hits[0].lexical_score > 0.5


def test_an_exact_name_finds_its_product(home: Searcher) -> None:
    for image_id, name, *_ in PRODUCTS:
        assert home.by_text(name, top_k=1).hits[0].image_id == image_id, name


def reference(searcher: Searcher, text: str, alpha: float, stats: LexicalStats) -> list[str]:
    """Every INDEXED item scored from the definitions, sorted: no index, no FTS5."""
    q = searcher.embedder.embed_texts([text])[0]
    weights = query_weights(tokenize(text), stats)
    scored = []
    for item in searcher.stores.catalog.by_status(ItemStatus.INDEXED):
        assert item.embedding is not None
        dense = float(q @ document_vector(item.embedding, item.text_embedding))
        lexical = lexical_score(weights, tokenize(lexical_text(item)))
        scored.append((alpha * dense + (1 - alpha) * lexical, item.image_id))
    return [i for _, i in sorted(scored, key=lambda s: (-s[0], s[1]))]


@pytest.mark.parametrize("text", ["blue jeans", "red summer dress", "women striped", "nike"])
def test_fused_ranking_equals_the_brute_force_reference(home: Searcher, text: str) -> None:
    stats = (
        LexicalStats.fit(
            lexical_text(it) for it in home.stores.catalog.by_status(ItemStatus.INDEXED)
        )
        if home.settings.home is Home.EMBEDDED
        else load_stats(home.stores, home.settings)
    )
    assert stats.n_docs == len(PRODUCTS)  # fitted on the whole catalog, in both homes
    for alpha in (0.0, 0.3, 0.5, 0.8):
        got = home.by_text(text, top_k=len(PRODUCTS), alpha=alpha)
        assert [h.image_id for h in got.hits] == reference(home, text, alpha, stats), alpha
        assert all(
            h.score
            == pytest.approx(alpha * (h.dense_score or 0) + (1 - alpha) * (h.lexical_score or 0))
            for h in got.hits
        )


@pytest.mark.parametrize("home", ["embedded"], indirect=True)
def test_the_next_query_counts_a_new_products_words(
    home: Searcher, tiny_embedder: OnnxClipEmbedder
) -> None:
    """The embedded home counts words live: statistics cached by one query are not reused
    once the catalog's words change (a new product's word is found, and every word's weight
    is the new catalog's)."""
    home.by_text("wrangler jeans", top_k=3)  # caches the statistics of these words
    added = [("p13", "Zyxo Women Yellow Jeans", (230, 210, 40)),
             ("p14", "Wrangler Women Black Jeans", (15, 15, 15))]  # fmt: skip
    for image_id, name, colour in added:
        data = make_image(colour, stripes=False)
        item = CatalogItem(
            image_id=image_id,
            key=home.stores.ingest_prefix + f"{image_id}.png",
            status=ItemStatus.INDEXED,
            tags={"articleType": "Jeans"},
            display_name=name,
            model_id=tiny_embedder.model_id,
            embedding=tiny_embedder.embed_images([data]).vectors[0],
            text_embedding=tiny_embedder.embed_texts([name])[0],
        )
        home.stores.catalog.put(item)
        home.stores.vectors.upsert([vector_record(item)], namespace=home.stores.namespace)
    assert home.by_text("zyxo", top_k=1).hits[0].image_id == "p13"
    stats = LexicalStats.fit(
        lexical_text(it) for it in home.stores.catalog.by_status(ItemStatus.INDEXED)
    )
    assert stats.n_docs == len(PRODUCTS) + 2 and stats.df["wrangler"] == 2
    got = home.by_text("wrangler jeans", top_k=len(PRODUCTS) + 2, alpha=0.5)
    assert [h.image_id for h in got.hits] == reference(home, "wrangler jeans", 0.5, stats)
    weights = query_weights(tokenize("wrangler jeans"), stats)
    items = home.stores.catalog.get_many([h.image_id for h in got.hits])
    for hit in got.hits:
        want = lexical_score(weights, tokenize(lexical_text(items[hit.image_id])))
        assert hit.lexical_score == pytest.approx(want), hit.image_id


def test_filters_apply_to_word_matches_too(home: Searcher) -> None:
    got = home.by_text("jeans", top_k=5, filters={"baseColour": {"$eq": "Red"}})
    assert got.hits and all(h.tags["baseColour"] == "Red" for h in got.hits)


def test_a_query_nothing_matches_is_flagged_weak(home: Searcher) -> None:
    threshold = home.weak_threshold()
    assert threshold is not None  # calibrated from the catalog's own names
    weak = home.by_text("xqzv plorf", top_k=3)
    assert weak.weak_match == (weak.hits[0].dense_score is not None
                               and weak.hits[0].dense_score < threshold)  # fmt: skip
    strong = home.by_text("Women Navy Blue Striped Dress", top_k=1)
    assert strong.hits[0].image_id == "p09" and not strong.weak_match


def test_an_image_query_is_ranked_by_pictures_alone(home: Searcher) -> None:
    """A product's name must not make another picture look more alike: the served order is
    the pictures' own."""
    data = make_image((25, 60, 195), stripes=False)
    got = home.by_image(data, top_k=len(PRODUCTS))
    q = home.embedder.embed_images([data]).vectors[0]
    items = home.stores.catalog.get_many([p[0] for p in PRODUCTS])
    by_picture = sorted(items, key=lambda i: (-float(q @ np.asarray(items[i].embedding)), i))
    assert [h.image_id for h in got.hits] == by_picture
    assert not got.weak_match
