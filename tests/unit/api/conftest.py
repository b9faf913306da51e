"""A small real embedded home (folder blobs, SQLite catalog, embedded index) and the tiny model.

Items are written the way ingest writes them (blob, catalog item INDEXED with its embedding, vector
with metadata), so the API is tested against the real adapters, not stand-ins.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fashion_search.api import create_app
from fashion_search.home import Stores, open_stores
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.search import Searcher
from fashion_search.settings import ApiSettings, EmbeddedSettings, Settings
from fashion_search.types import CatalogItem, ItemStatus, VectorRecord
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from pydantic import SecretStr

API_KEY = "test-key-7f3a9c"
PUBLIC_URL = "http://testserver"

# (image id, display name, tags, colour, stripes)
ITEMS = [
    (
        "1001",
        "Red Summer Dress",
        {"gender": "Women", "articleType": "Dresses", "baseColour": "Red"},
        (220, 20, 30),
        False,
    ),
    (
        "1002",
        "Red Striped Top",
        {"gender": "Women", "articleType": "Tops", "baseColour": "Red"},
        (200, 30, 40),
        True,
    ),
    (
        "1003",
        "Blue Jeans",
        {"gender": "Men", "articleType": "Jeans", "baseColour": "Blue"},
        (20, 40, 200),
        False,
    ),
    (
        "1004",
        "Navy Shirt",
        {"gender": "Men", "articleType": "Shirts", "baseColour": "Navy Blue"},
        (10, 20, 90),
        True,
    ),
    (
        "1005",
        "Green Kurta",
        {"gender": "Women", "articleType": "Kurtas", "baseColour": "Green"},
        (30, 180, 60),
        False,
    ),
    (
        "1006",
        "Yellow Cap",
        {"gender": "Unisex", "articleType": "Caps", "baseColour": "Yellow"},
        (240, 220, 20),
        True,
    ),
]


def make_image(colour: tuple[int, int, int], *, stripes: bool, fmt: str = "PNG") -> bytes:
    img = Image.new("RGB", (96, 96), colour)
    if stripes:
        draw = ImageDraw.Draw(img)
        for y in range(0, 96, 16):
            draw.rectangle((0, y, 95, y + 6), fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@dataclass
class Home:
    settings: Settings
    stores: Stores
    embedder: OnnxClipEmbedder
    images: dict[str, bytes]  # image id -> bytes as stored


def api_settings(data_dir: Path, **api: object) -> Settings:
    fields: dict[str, object] = {"api_keys": [SecretStr(API_KEY)], "public_url": PUBLIC_URL}
    fields.update(api)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        embedded=EmbeddedSettings(data_dir=data_dir),
        api=ApiSettings(**fields),  # type: ignore[arg-type]
    )


def fill(stores: Stores, embedder: OnnxClipEmbedder) -> dict[str, bytes]:
    images: dict[str, bytes] = {}
    for image_id, name, tags, colour, stripes in ITEMS:
        data = make_image(colour, stripes=stripes)
        key = f"{image_id}.png"
        stores.blobs.put(key, data, content_type="image/png")
        vec = embedder.embed_images([data]).vectors[0]
        digest = hashlib.sha256(data).hexdigest()
        stores.catalog.put(
            CatalogItem(
                image_id=image_id,
                key=key,
                status=ItemStatus.INDEXED,
                tags=dict(tags),
                display_name=name,
                content_hash=digest,
                model_id=embedder.model_id,
                embedding=vec,
            )
        )
        meta: dict[str, object] = {"key": key, "display_name": name, "tags_predicted": False}
        meta.update(tags)
        meta["content_hash"] = digest
        stores.vectors.upsert([VectorRecord(id=image_id, values=vec, metadata=meta)])  # type: ignore[arg-type]
        images[image_id] = data
    return images


@pytest.fixture
def home(tmp_path: Path, tiny_embedder: OnnxClipEmbedder) -> Iterator[Home]:
    settings = api_settings(tmp_path / "data")
    with open_stores(settings, dimension=tiny_embedder.dim) as stores:
        yield Home(settings, stores, tiny_embedder, fill(stores, tiny_embedder))


@pytest.fixture
def searcher(home: Home) -> Searcher:
    return Searcher(home.stores, home.embedder, settings=home.settings)


@pytest.fixture
def client(home: Home, searcher: Searcher) -> Iterator[TestClient]:
    app = create_app(home.settings, searcher=searcher)
    with TestClient(app, headers={"X-API-Key": API_KEY}) as c:
        yield c
