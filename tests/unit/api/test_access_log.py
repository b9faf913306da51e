"""A key sent in the query string never reaches uvicorn's access log."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fashion_search.api import create_app
from fashion_search.api.access_log import redact_query
from fashion_search.search import Searcher

from tests.unit.api.conftest import API_KEY, Home

SECRET = "query-string-key-93b1"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def served(home: Home, searcher: Searcher) -> Iterator[tuple[str, Lines]]:
    """The app under a real uvicorn with its default logging config (as ``serve`` runs it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(home.settings, searcher=searcher)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    lines = Lines()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(lines)  # after uvicorn's dictConfig, which replaces the handlers
    try:
        yield f"http://127.0.0.1:{port}", lines
    finally:
        access.removeHandler(lines)
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("name", ["api_key", "X-API-Key", "apikey", "key", "token", "API%5FKEY"])
def test_query_string_key_is_not_in_the_access_log(served: tuple[str, Lines], name: str) -> None:
    base, lines = served
    r = httpx.post(
        f"{base}/get_image_by_text?{name}={SECRET}&top=1",
        json={"text": "red dress"},
        headers={"X-API-Key": API_KEY},
    )
    assert r.status_code == 200
    httpx.get(f"{base}/health?{name}={SECRET}")
    assert len(lines.lines) == 2, lines.lines
    assert all(SECRET not in line for line in lines.lines), lines.lines
    # The rest of the line is kept for operators.
    assert "/get_image_by_text?" in lines.lines[0] and "top=1" in lines.lines[0]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("/a?api_key=s3&x=1", "/a?api_key=[redacted]&x=1"),
        ("/a?x=1&Token=s3", "/a?x=1&Token=[redacted]"),
        ("/a?keyword=dress", "/a?keyword=dress"),
        ("/a", "/a"),
    ],
)
def test_redact_query(text: str, want: str) -> None:
    assert redact_query(text) == want
