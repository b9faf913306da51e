"""A real fashion-search API for the UI tests: the api helper's app, served by uvicorn on a free
loopback port, over an embedded home in a temporary folder seeded with a handful of images.

The UI under test only ever sees this server over HTTP, as in production. Items are written
through the ports (blobs, catalog, vectors) with the ingest's own metadata rule, so the catalog
looks as ingest leaves it.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from fashion_search.home import Stores
    from fashion_search.model.base import Embedder
    from fastapi import FastAPI

API_KEY = "ui-test-key-0123456789"


@dataclass(frozen=True)
class SeedItem:
    image_id: str
    display_name: str
    colour: tuple[int, int, int]
    tags: dict[str, str]

    @property
    def key(self) -> str:
        return f"{self.image_id}.png"

    def png(self) -> bytes:
        return make_png(self.colour, shape=int(self.image_id) % 3)

    def lookalike_png(self) -> bytes:
        """The same picture with one pixel changed: a new image (the API excludes exact copies
        of the query from its results) whose nearest catalog item is this one."""
        return make_png(self.colour, shape=int(self.image_id) % 3, marked=True)


def _item(image_id: str, name: str, rgb: tuple[int, int, int], tags: str) -> SeedItem:
    """``tags`` is "gender/masterCategory/articleType/baseColour/season/usage"."""
    gender, master, article, colour, season, usage = tags.split("/")
    return SeedItem(
        image_id,
        name,
        rgb,
        {
            "gender": gender,
            "masterCategory": master,
            "subCategory": master,
            "articleType": article,
            "baseColour": colour,
            "season": season,
            "usage": usage,
            "year": "2017",
        },
    )


SEED: tuple[SeedItem, ...] = (
    _item("1001", "Red Cotton Tee", (200, 30, 30), "Men/Apparel/Tshirts/Red/Summer/Casual"),
    _item("1002", "Blue Denim Jeans", (30, 60, 190), "Men/Apparel/Jeans/Blue/Winter/Casual"),
    _item(
        "1003",
        "Black Leather Handbag",
        (15, 15, 15),
        "Women/Accessories/Handbags/Black/Fall/Casual",
    ),
    _item(
        "1004",
        "White Court Sneakers",
        (245, 245, 245),
        "Women/Footwear/Casual Shoes/White/Summer/Sports",
    ),
    _item("1005", "Green Party Dress", (30, 160, 60), "Women/Apparel/Dresses/Green/Spring/Party"),
    _item(
        "1006", "Gold Wrist Watch", (212, 175, 55), "Men/Accessories/Watches/Yellow/Winter/Formal"
    ),
    _item("1007", "Pink Summer Top", (240, 120, 170), "Women/Apparel/Tops/Pink/Summer/Casual"),
)


def make_png(
    colour: tuple[int, int, int], *, shape: int = 0, size: int = 96, marked: bool = False
) -> bytes:
    """A product-like picture: a coloured garment shape on a light background."""
    img = Image.new("RGB", (size, size), (235, 232, 228))
    draw = ImageDraw.Draw(img)
    m = size // 6
    if shape == 0:
        draw.rectangle((m, m, size - m, size - m), fill=colour)
    elif shape == 1:
        draw.ellipse((m, m, size - m, size - m), fill=colour)
    else:
        draw.polygon([(size // 2, m), (size - m, size - m), (m, size - m)], fill=colour)
    if marked:
        img.putpixel((0, 0), (0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http_ok(url: str, *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback test URL
                if r.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up within {timeout_s} s: {last}")


@dataclass
class LiveApi:
    url: str
    key: str
    items: tuple[SeedItem, ...]
    data_dir: Path
    fetched: list[str] = field(default_factory=list)  # URLs the API fetched for URL queries

    def item(self, image_id: str) -> SeedItem:
        return next(i for i in self.items if i.image_id == image_id)


def seed(stores: Stores, embedder: Embedder, items: tuple[SeedItem, ...]) -> None:
    """Write items the way ingest leaves them: blob, INDEXED catalog row, vector + metadata."""
    from fashion_search.ingest.metadata import vector_metadata
    from fashion_search.types import CatalogItem, ItemStatus, VectorRecord

    pngs = [item.png() for item in items]
    vectors = embedder.embed_images(pngs).vectors
    records = []
    for item, png, vec in zip(items, pngs, vectors, strict=True):
        stores.blobs.put(item.key, png, content_type="image/png")
        row = CatalogItem(
            image_id=item.image_id,
            key=item.key,
            status=ItemStatus.INDEXED,
            tags=dict(item.tags),
            display_name=item.display_name,
            content_hash=hashlib.sha256(png).hexdigest(),
            model_id=embedder.model_id,
            embedding=vec,
        )
        stores.catalog.put(row)
        records.append(VectorRecord(id=item.image_id, values=vec, metadata=vector_metadata(row)))
    stores.vectors.upsert(records, namespace=stores.namespace)


def _loopback_fetch(seen: list[str]) -> Callable[[str], bytes]:
    """The URL fetcher the test API uses: plain HTTP to the loopback image server.

    The real fetcher refuses loopback addresses (SSRF guard) and non-80/443 ports, so a test
    cannot reach a local image through it; this one still goes over HTTP, so the UI -> API ->
    image server path is real. The guard's own refusal is tested separately (unsafe URL).
    """

    def fetch(url: str) -> bytes:
        seen.append(url)
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback test URL
            return bytes(r.read())

    return fetch


@contextmanager
def serve(app: FastAPI, port: int) -> Iterator[None]:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health")
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def live_api(
    tmp: Path, bundle: Path, *, loopback_fetch: bool = True, alpha: float | None = None
) -> Iterator[LiveApi]:
    from fashion_search.api.app import create_app
    from fashion_search.home import open_stores
    from fashion_search.model.embedder import OnnxClipEmbedder
    from fashion_search.search import Searcher
    from fashion_search.settings import Settings

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings.model_validate(
        {
            "home": "embedded",
            "embedded": {"data_dir": tmp},
            "model": {"bundle": bundle, "intra_op_threads": 1},
            "api": {"api_keys": [API_KEY], "public_url": url},
            # The deployment's words-vs-picture default (None: the settings' own).
            "search": {} if alpha is None else {"alpha": alpha},
        }
    )
    embedder = OnnxClipEmbedder.from_bundle(bundle, intra_op_threads=1)
    stores = open_stores(settings, dimension=embedder.dim)
    seed(stores, embedder, SEED)
    fetched: list[str] = []
    fetch = _loopback_fetch(fetched) if loopback_fetch else None
    searcher = Searcher(stores, embedder, settings=settings, fetch=fetch)
    app = create_app(settings, searcher=searcher)
    with serve(app, port):
        yield LiveApi(url=url, key=API_KEY, items=SEED, data_dir=tmp, fetched=fetched)


@contextmanager
def image_server(files: dict[str, bytes]) -> Iterator[str]:
    """Serves ``files`` (path -> PNG bytes) on a loopback port; yields the base URL."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "image/png" if body is not None else "text/plain")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
