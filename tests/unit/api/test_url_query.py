"""``{"url": ...}`` queries go through the SSRF-safe fetcher (local server, injected resolver)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from fashion_search.api import create_app
from fashion_search.fetch import ImageFetcher, default_connector
from fashion_search.search import Searcher
from fastapi.testclient import TestClient

from tests.unit.api.conftest import API_KEY, Home

PUBLIC = "93.184.216.34"


@pytest.fixture
def image_server(home: Home) -> Iterator[int]:
    body = home.images["1006"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def url_client(home: Home, image_server: int) -> Iterator[TestClient]:
    fetch_settings = home.settings.fetch.model_copy(update={"allowed_ports": [80, image_server]})
    fetcher = ImageFetcher(
        fetch_settings,
        resolver=lambda host, port: [PUBLIC] if host == "shop.example" else ["127.0.0.1"],
        connector=lambda address, port, timeout: default_connector("127.0.0.1", port, timeout),
    )
    searcher = Searcher(home.stores, home.embedder, settings=home.settings, fetch=fetcher.fetch)
    with TestClient(
        create_app(home.settings, searcher=searcher), headers={"X-API-Key": API_KEY}
    ) as c:
        yield c


def test_similar_by_url(url_client: TestClient, image_server: int) -> None:
    url = f"http://shop.example:{image_server}/cap.png"
    r = url_client.post("/get_similar_images", json={"url": url})
    assert r.status_code == 200, r.text
    ids = [h["image_id"] for h in r.json()["results"]]
    assert len(ids) == 3 and "1006" not in ids  # the same bytes as catalog item 1006


def test_search_by_image_url(url_client: TestClient, image_server: int) -> None:
    url = f"http://shop.example:{image_server}/cap.png"
    r = url_client.post("/search", json={"image_url": url, "text": "blue", "top_k": 2})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 2


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "http://internal.example/"],
)
def test_unsafe_url_is_422(url_client: TestClient, url: str) -> None:
    r = url_client.post("/get_similar_images", json={"url": url})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unsafe_url"
    assert r.json()["error"]["field"] == "url"
