"""``fashion-search serve``: uvicorn on loopback against an embedded home, image URLs included."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fashion_search.cli.serve import served_settings
from fashion_search.home import open_stores
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.settings import ApiSettings, Settings

from tests.unit.api.conftest import ITEMS, api_settings, fill


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("host", "public_url", "want"),
    [
        ("127.0.0.1", None, "http://127.0.0.1:8123"),
        ("0.0.0.0", None, "http://127.0.0.1:8123"),
        ("::", None, "http://127.0.0.1:8123"),
        ("0.0.0.0", "https://shop.example", "https://shop.example"),
    ],
)
def test_public_url_is_browsable(host: str, public_url: str | None, want: str) -> None:
    base = Settings(_env_file=None, api=ApiSettings(public_url=public_url))  # type: ignore[call-arg]
    assert served_settings(base, host=host, port=8123).api.public_url == want


@pytest.mark.slow
def test_serve_answers_queries_and_serves_image_urls(
    tmp_path: Path, tiny_bundle: Path, tiny_embedder: OnnxClipEmbedder
) -> None:
    data = tmp_path / "data"
    with open_stores(api_settings(data), dimension=tiny_embedder.dim) as stores:
        images = fill(stores, tiny_embedder)
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "FASHION_SEARCH_EMBEDDED__DATA_DIR": str(data),
            "FASHION_SEARCH_MODEL__BUNDLE": str(tiny_bundle),
            "FASHION_SEARCH_MODEL__INTRA_OP_THREADS": "1",
            "FASHION_SEARCH_API__API_KEYS": '["serve-key"]',
            "FASHION_SEARCH_LOG_LEVEL": "WARNING",
        }
    )
    cmd = [sys.executable, "-m", "fashion_search.cli", "serve", "--host", "127.0.0.1"]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                output = (tmp_path / "serve.log").read_text(errors="replace")
                assert proc.poll() is None, output
                assert time.monotonic() < deadline, f"server did not come up:\n{output}"
                time.sleep(0.2)
        assert health.json()["index_size"] == len(ITEMS)
        r = httpx.post(
            f"{base}/get_image_by_text",
            json={"text": "red dress", "top_k": 2},
            headers={"X-API-Key": "serve-key"},
        )
        assert r.status_code == 200, r.text
        hit = r.json()["results"][0]
        assert hit["image_url"] == f"{base}/files/{hit['key']}"
        assert httpx.get(hit["image_url"]).content == images[hit["image_id"]]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
