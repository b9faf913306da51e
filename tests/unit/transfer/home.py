"""A small embedded home, ingested for real with the tiny model, for the transfer tests: tagged
and untagged images (predicted tags), a key with spaces in a sub-folder, a corrupt file (FAILED)
and a removed image (DELETED tombstone)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashion_search.home import Stores, open_stores
from fashion_search.ingest import Ingestor
from fashion_search.ingest.metadata import tags_to_user_metadata
from fashion_search.ingest.triggers.folder import created_event, removed_event
from fashion_search.settings import EmbeddedSettings, Settings
from fashion_search.types import ItemStatus

from tests.fixtures.ingest import jpeg_bytes

COLOURS = ("Red", "Blue", "Black", "White")
TYPES = ("Shirts", "Jeans", "Dresses")


@dataclass
class Home:
    settings: Settings
    stores: Stores

    def close(self) -> None:
        self.stores.close()


def open_home(data_dir: Path, *, dimension: int) -> Home:
    settings = Settings(embedded=EmbeddedSettings(data_dir=data_dir))
    return Home(settings, open_stores(settings, dimension=dimension))


def filled_home(data_dir: Path, embedder: Any, *, tagged: int = 10, untagged: int = 2) -> Home:
    """Ingest ``tagged`` + ``untagged`` images plus one corrupt file and one removed image."""
    home = open_home(data_dir, dimension=embedder.dim)
    stores, root = home.stores, home.settings.embedded.images_dir
    keys: list[str] = []
    for n in range(tagged):
        tags = {
            "baseColour": COLOURS[n % len(COLOURS)],
            "articleType": TYPES[n % len(TYPES)],
            "year": str(2010 + n % 3),
        }
        key = f"{10000 + n}.jpg" if n % 4 else f"tops/shirt {n}.jpg"
        meta = tags_to_user_metadata(tags, f"Product {n}")
        stores.blobs.put(key, jpeg_bytes(n), content_type="image/jpeg", metadata=meta)
        keys.append(key)
    for n in range(untagged):
        key = f"plain-{n}.png"
        stores.blobs.put(key, jpeg_bytes(100 + n), content_type="image/jpeg")
        keys.append(key)
    stores.blobs.put("broken.jpg", b"this is not an image", content_type="image/jpeg")
    stores.blobs.put("gone.jpg", jpeg_bytes(200), content_type="image/jpeg")
    keys += ["broken.jpg", "gone.jpg"]
    # Tagged images first: the untagged ones then get tags predicted from their vocabulary.
    ingestor = Ingestor(stores, embedder, settings=home.settings, vocabulary_ttl_s=0)
    for batch in (keys[:tagged], keys[tagged:]):
        events = [created_event(root, k) for k in batch]
        ingestor.handle([e for e in events if e is not None])
    stores.blobs.delete("gone.jpg")
    ingestor.handle([removed_event("gone.jpg")])
    assert stores.catalog.count(ItemStatus.INDEXED) == tagged + untagged
    assert stores.catalog.count(ItemStatus.FAILED) == 1
    assert stores.catalog.count(ItemStatus.DELETED) == 1
    return home
