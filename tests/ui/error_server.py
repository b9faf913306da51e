"""A tiny local HTTP server that answers like a failing API: a fixed status and error body, or a
delay longer than the UI's timeout. Used only for the error paths the real API cannot be made to
take on demand (5xx, slow, a body that is not JSON)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    status: int = 500
    code: str = "internal_error"
    message: str = "boom"
    field: str | None = None
    delay_s: float = 0.0
    raw_body: bytes | None = None  # sent instead of the JSON error body


class ErrorServer(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour
    requests_seen: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: ErrorServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # keep the test output clean

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests_seen.append(f"{self.command} {self.path}")
        b = self.server.behaviour
        if self.path == "/health":
            # The real API serves /health without a key; keep the sidebar's "connected" path real.
            body = {
                "status": "ok",
                "model_id": "stub",
                "dim": 4,
                "index_size": 0,
                "home": "stub",
                "vector_engine": "exact",
                "index_version": "seq-0",
            }
            self._send(200, json.dumps(body).encode())
            return
        if b.delay_s:
            time.sleep(b.delay_s)
        if b.raw_body is not None:
            self._send(b.status, b.raw_body, content_type="text/html")
            return
        err = {"error": {"code": b.code, "message": b.message, "field": b.field}}
        self._send(b.status, json.dumps(err).encode())

    def _send(self, status: int, body: bytes, *, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the "slow" case): nothing to answer

    do_GET = _answer
    do_POST = _answer


@contextmanager
def error_server(behaviour: Behaviour) -> Iterator[ErrorServer]:
    server = ErrorServer(("127.0.0.1", 0), _Handler)
    server.behaviour = behaviour
    server.requests_seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
