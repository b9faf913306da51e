"""A local HTTP server speaking Pinecone's REST API (API version 2026-07), for tests.

The data plane (``/vectors/upsert``, ``/query``, ``/vectors/fetch``, ``/vectors/delete``,
``/describe_index_stats``, ``/vectors/list``) and the control plane the adapter uses
(``GET/POST /indexes``) with Pinecone's documented limits and error shapes: control-plane errors
are ``{"error": {"code", "message"}, "status"}``, data-plane errors ``{"code", "message",
"details"}`` (gRPC status codes). It refuses what Pinecone refuses: > 2 MB or > 1000 vectors per
upsert, > 40 KB or ill-typed metadata per vector, a wrong dimension, top_k outside 1..10000,
> 1000 ids per fetch/delete, a malformed filter, a missing or wrong ``Api-Key``.

Sparse-dense (https://docs.pinecone.io/guides/search/hybrid-search): records may carry
``sparseValues`` and queries a ``sparseVector`` on a ``dotproduct`` index only (else 400, as
Pinecone answers); a dotproduct index scores ``dense . dense + sparse . sparse``, a cosine one
the dense cosine.

Each index is served under ``/hosts/<name>``, the "host" its describe answer gives; the root
paths serve an index named ``default`` whose dimension the first vector sets (for callers that
only know one host). Filters are evaluated with ``fashion_search.stores.filters.matches``; the
contract tests compare it and the embedded index against each other through the real SDK.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from fashion_search.errors import InvalidFilter
from fashion_search.stores.filters import compile_filter, matches, metadata_json

MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_UPSERT_VECTORS = 1000
MAX_METADATA_BYTES = 40 * 1024
MAX_IDS = 1000
MAX_TOP_K = 10_000
MAX_LIST_LIMIT = 100


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, *, control: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.control = control

    def body(self) -> dict[str, Any]:
        if self.control:
            code = {404: "NOT_FOUND", 409: "ALREADY_EXISTS", 401: "UNAUTHENTICATED"}.get(
                self.status, "INVALID_ARGUMENT"
            )
            return {"error": {"code": code, "message": self.message}, "status": self.status}
        grpc = {400: 3, 401: 16, 404: 5, 413: 3, 429: 8}.get(self.status, 13)
        return {"code": grpc, "message": self.message, "details": []}


@dataclass
class Injected:
    """A failure the next matching requests get: an HTTP status, or a stall (client timeout)."""

    path_contains: str
    remaining: int
    status: int = 503
    delay_s: float = 0.0
    retry_after: str | None = None


@dataclass
class FakeIndex:
    name: str
    dimension: int
    metric: str = "cosine"
    namespaces: dict[str, dict[str, tuple[list[float], dict[str, Any]]]] = field(
        default_factory=dict
    )
    # namespace -> id -> {sparse index: value}, beside ``namespaces`` (dotproduct indexes).
    sparse: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    body_bytes: int
    items: int  # vectors in an upsert, ids in a fetch/delete


class FakePinecone:
    """The server and its state; ``url`` is the control-plane host to give the SDK."""

    def __init__(
        self, *, api_key: str = "test-key", bind: str = "127.0.0.1", port: int = 0
    ) -> None:
        """``bind="0.0.0.0"`` serves containers too (``sam local``, infra/local_stack.py)."""
        self.api_key = api_key
        self.indexes: dict[str, FakeIndex] = {}
        self.injected: list[Injected] = []
        self.seen: list[Seen] = []
        # path fragment -> (requests allowed per window, window in s, times of those let through)
        self.rate_limits: dict[str, tuple[int, float, deque[float]]] = {}
        self.throttled = 0  # requests answered 429 by a rate limit
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer((bind, port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_port)
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakePinecone:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def host_of(self, name: str) -> str:
        return f"{self.url}/hosts/{name}"

    def create_index(self, name: str, *, dimension: int, metric: str = "cosine") -> None:
        with self.lock:
            self.indexes[name] = FakeIndex(name, dimension, metric)

    def fail_next(
        self,
        path_contains: str,
        *,
        times: int = 1,
        status: int = 503,
        delay_s: float = 0.0,
        retry_after: str | None = None,
    ) -> None:
        """The next ``times`` requests whose path contains ``path_contains`` fail."""
        with self.lock:
            self.injected.append(Injected(path_contains, times, status, delay_s, retry_after))

    def rate_limit(self, path_contains: str, *, per_second: int, window_s: float = 1.0) -> None:
        """Answer 429 to requests on ``path_contains`` beyond ``per_second`` in any window, as
        Pinecone's per-namespace request limits do (docs: "Rate limits", 100 upserts/s). A
        longer ``window_s`` keeps a test independent of how fast a loaded machine runs it."""
        with self.lock:
            self.rate_limits[path_contains] = (per_second, window_s, deque())

    def over_rate_limit(self, path: str) -> int | None:
        """The limit ``path`` is over now (the request is refused), else None (counted)."""
        now = time.monotonic()
        with self.lock:
            for fragment, (limit, window_s, recent) in self.rate_limits.items():
                if fragment not in path:
                    continue
                while recent and now - recent[0] >= window_s:
                    recent.popleft()
                if len(recent) >= limit:
                    self.throttled += 1
                    return limit
                recent.append(now)
        return None

    def clear(self) -> None:
        with self.lock:
            self.injected.clear()
            self.seen.clear()
            self.rate_limits.clear()
            self.throttled = 0

    def reset(self) -> None:
        """Forget every index too: each test starts with an empty project."""
        with self.lock:
            self.indexes.clear()
            self.injected.clear()
            self.seen.clear()
            self.rate_limits.clear()
            self.throttled = 0

    def count(self, path_suffix: str) -> int:
        """How many requests reached ``path_suffix`` (injected failures included)."""
        return sum(1 for s in self.seen if s.path.endswith(path_suffix))

    # -- dispatch -----------------------------------------------------------------------------

    def take_injected(self, path: str) -> Injected | None:
        with self.lock:
            for item in self.injected:
                if item.path_contains in path and item.remaining > 0:
                    item.remaining -= 1
                    return item
        return None

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/indexes" or path.startswith("/indexes/"):
            return self._control(method, path, body)
        index_name = "default"
        if path.startswith("/hosts/"):
            _, _, rest = path.partition("/hosts/")
            index_name, _, tail = rest.partition("/")
            index_name, path = unquote(index_name), "/" + tail
        if len(body) > MAX_REQUEST_BYTES:
            raise ApiFailure(
                413,
                f"Request size {len(body)} bytes exceeds the maximum supported size of "
                f"{MAX_REQUEST_BYTES} bytes",
            )
        payload = json.loads(body) if body else {}
        routes: dict[tuple[str, str], Callable[[FakeIndex, Any, Any], dict[str, Any]]] = {
            ("POST", "/vectors/upsert"): _upsert,
            ("POST", "/query"): _query,
            ("GET", "/vectors/fetch"): _fetch,
            ("POST", "/vectors/delete"): _delete,
            ("POST", "/describe_index_stats"): _stats,
            ("GET", "/vectors/list"): _list,
        }
        route = routes.get((method, path))
        if route is None:
            raise ApiFailure(404, f"no route {method} {path}")
        with self.lock:
            index = self.indexes.get(index_name)
            if index is None and index_name == "default":
                # The root host's index: its dimension is set by the first vector it sees.
                index = self.indexes[index_name] = FakeIndex(index_name, 0)
            if index is None:
                raise ApiFailure(404, f"index {index_name!r} not found")
            return 200, route(index, payload, query)

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        name = unquote(path[len("/indexes/") :]) if path.startswith("/indexes/") else ""
        with self.lock:
            if method == "GET" and name:
                if name not in self.indexes:
                    raise ApiFailure(404, f"Resource {name} not found", control=True)
                return 200, self._describe(self.indexes[name])
            if method == "POST" and not name:
                request = json.loads(body)
                name = request.get("name", "")
                dense = request.get("schema", {}).get("fields", {}).get("_values", {})
                dimension, metric = dense.get("dimension"), dense.get("metric", "cosine")
                if dense.get("type") != "dense_vector" or not isinstance(dimension, int):
                    raise ApiFailure(400, "schema needs a dense_vector field", control=True)
                if not 1 <= dimension <= 20_000 or metric not in (
                    "cosine",
                    "euclidean",
                    "dotproduct",
                ):
                    raise ApiFailure(400, "invalid dimension or metric", control=True)
                if name in self.indexes:
                    raise ApiFailure(409, "Resource already exists", control=True)
                self.indexes[name] = FakeIndex(name, dimension, metric)
                return 201, self._describe(self.indexes[name])
        raise ApiFailure(404, f"no route {method} {path}", control=True)

    def _describe(self, index: FakeIndex) -> dict[str, Any]:
        return {
            "name": index.name,
            "status": {"ready": True, "state": "Ready"},
            "schema": {
                "fields": {
                    "_values": {
                        "type": "dense_vector",
                        "dimension": index.dimension,
                        "metric": index.metric,
                    }
                }
            },
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            "deletion_protection": "disabled",
            "host": self.host_of(index.name),
        }


def _check_metadata(record_id: str, metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ApiFailure(400, f"Metadata of vector {record_id!r} must be an object")
    for key, value in metadata.items():
        ok = isinstance(value, str | bool | int | float) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        if not ok:
            raise ApiFailure(
                400,
                f"Metadata value for field {key!r} of vector {record_id!r} must be a string, "
                f"number, boolean or list of strings, got {json.dumps(value)[:40]}",
            )
    size = len(metadata_json(metadata).encode())
    if size > MAX_METADATA_BYTES:
        raise ApiFailure(
            400,
            f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} "
            "bytes per vector",
        )
    return metadata


def _check_values(index: FakeIndex, values: Any) -> list[float]:
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise ApiFailure(400, "Vector values must be a list of numbers")
    if index.dimension == 0:
        index.dimension = len(values)
    if len(values) != index.dimension:
        raise ApiFailure(
            400,
            f"Vector dimension {len(values)} does not match the dimension of the index "
            f"{index.dimension}",
        )
    if index.metric == "cosine" and not any(values):
        raise ApiFailure(400, "Dense vectors must contain at least one non-zero value")
    return [float(v) for v in values]


def _upsert(index: FakeIndex, payload: Any, _query: Any) -> dict[str, Any]:
    vectors = payload.get("vectors")
    if not isinstance(vectors, list) or not vectors:
        raise ApiFailure(400, "Upsert needs a non-empty list of vectors")
    if len(vectors) > MAX_UPSERT_VECTORS:
        raise ApiFailure(
            400, f"Upsert batch of {len(vectors)} exceeds the maximum of {MAX_UPSERT_VECTORS}"
        )
    checked = []
    for vector in vectors:
        record_id = vector.get("id")
        if not isinstance(record_id, str) or not 1 <= len(record_id) <= 512:
            raise ApiFailure(400, "Vector id must be a string of 1..512 characters")
        values = _check_values(index, vector.get("values"))
        metadata = _check_metadata(record_id, vector.get("metadata"))
        checked.append((record_id, values, metadata, _check_sparse(index, vector)))
    namespace = payload.get("namespace", "")
    space = index.namespaces.setdefault(namespace, {})
    sparse_space = index.sparse.setdefault(namespace, {})
    for record_id, values, metadata, sparse in checked:
        space[record_id] = (values, metadata)
        sparse_space[record_id] = sparse
    return {"upsertedCount": len(checked)}


def _check_sparse(
    index: FakeIndex, payload: dict[str, Any], key: str = "sparseValues"
) -> dict[int, float]:
    sparse = payload.get(key)
    if sparse is None:
        return {}
    if index.metric != "dotproduct":
        raise ApiFailure(
            400, "Index configuration does not support sparse values - only indexes that are "
            "sparse or using dotproduct are supported",
        )  # fmt: skip
    indices, values = sparse.get("indices"), sparse.get("values")
    if (
        not isinstance(indices, list)
        or not isinstance(values, list)
        or len(indices) != len(values)
        or len(set(indices)) != len(indices)
        or not all(isinstance(i, int) and 0 <= i < 2**32 for i in indices)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ):
        raise ApiFailure(400, "Sparse vector must have unique uint32 indices and as many values")
    return {int(i): float(v) for i, v in zip(indices, values, strict=True)}


def _query(index: FakeIndex, payload: Any, _query: Any) -> dict[str, Any]:
    top_k = payload.get("topK")
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise ApiFailure(400, f"topK must be between 1 and {MAX_TOP_K}, got {top_k}")
    q = np.asarray(_check_values(index, payload.get("vector")))
    q_sparse = _check_sparse(index, payload, "sparseVector")
    sparse_space = index.sparse.get(payload.get("namespace", ""), {})
    try:
        node = compile_filter(payload.get("filter"))
    except InvalidFilter as exc:
        raise ApiFailure(400, f"Invalid filter: {exc.message}") from exc
    namespace = payload.get("namespace", "")
    scored = []
    for record_id, (values, metadata) in index.namespaces.get(namespace, {}).items():
        if matches(node, metadata):
            v = np.asarray(values)
            if index.metric == "dotproduct":
                doc = sparse_space.get(record_id, {})
                lexical = sum(w * doc.get(i, 0.0) for i, w in q_sparse.items())
                scored.append((float(v @ q) + lexical, record_id))
            else:
                scored.append((float(v @ q / (np.linalg.norm(v) * np.linalg.norm(q))), record_id))
    scored.sort(key=lambda s: (-s[0], s[1]))
    space = index.namespaces.get(namespace, {})
    out = []
    for score, record_id in scored[:top_k]:
        values, metadata = space[record_id]
        match: dict[str, Any] = {"id": record_id, "score": score, "values": []}
        if payload.get("includeValues"):
            match["values"] = values
        if payload.get("includeMetadata") and metadata:
            match["metadata"] = metadata
        out.append(match)
    return {"matches": out, "namespace": namespace, "usage": {"readUnits": 1}}


def _ids(ids: Any) -> list[str]:
    if not isinstance(ids, list) or not ids:
        raise ApiFailure(400, "ids must be a non-empty list")
    if len(ids) > MAX_IDS:
        raise ApiFailure(400, f"{len(ids)} ids exceed the maximum of {MAX_IDS} per request")
    return [str(i) for i in ids]


def _fetch(index: FakeIndex, _payload: Any, query: Any) -> dict[str, Any]:
    namespace = query.get("namespace", [""])[0]
    space = index.namespaces.get(namespace, {})
    found = {}
    for record_id in _ids(query.get("ids")):
        if record_id in space:
            values, metadata = space[record_id]
            found[record_id] = {"id": record_id, "values": values, "metadata": metadata}
    return {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}


def _delete(index: FakeIndex, payload: Any, _query: Any) -> dict[str, Any]:
    space = index.namespaces.get(payload.get("namespace", ""), {})
    if payload.get("deleteAll"):
        space.clear()
        return {}
    for record_id in _ids(payload.get("ids")):
        space.pop(record_id, None)
    return {}


def _stats(index: FakeIndex, _payload: Any, _query: Any) -> dict[str, Any]:
    spaces = {name: {"vectorCount": len(s)} for name, s in index.namespaces.items() if s}
    return {
        "namespaces": spaces,
        "dimension": index.dimension or None,
        "indexFullness": 0.0,
        "totalVectorCount": sum(len(s) for s in index.namespaces.values()),
        "metric": index.metric,
        "vectorType": "dense",
    }


def _list(index: FakeIndex, _payload: Any, query: Any) -> dict[str, Any]:
    namespace = query.get("namespace", [""])[0]
    prefix = query.get("prefix", [""])[0]
    limit = int(query.get("limit", [MAX_LIST_LIMIT])[0])
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ApiFailure(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
    token = query.get("paginationToken", [None])[0]
    after = base64.urlsafe_b64decode(token).decode() if token else None
    ids = sorted(
        i
        for i in index.namespaces.get(namespace, {})
        if i.startswith(prefix) and (after is None or i > after)
    )
    page = ids[:limit]
    out: dict[str, Any] = {
        "vectors": [{"id": i} for i in page],
        "namespace": namespace,
        "usage": {"readUnits": 1},
    }
    if len(ids) > limit:
        out["pagination"] = {"next": base64.urlsafe_b64encode(page[-1].encode()).decode()}
    return out


def _handler_for(fake: FakePinecone) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            items = 0
            try:
                parsed = json.loads(body) if body else {}
                items = len(parsed.get("vectors") or parsed.get("ids") or [])
            except (ValueError, AttributeError):
                pass
            if "ids=" in self.path:
                items = self.path.count("ids=")
            with fake.lock:
                fake.seen.append(Seen(self.command, path, len(body), items))
            headers: dict[str, str] = {}
            try:
                if self.headers.get("Api-Key") != fake.api_key:
                    raise ApiFailure(401, "Invalid API Key", control=True)
                injected = fake.take_injected(path)
                if injected is not None:
                    time.sleep(injected.delay_s)
                    if injected.retry_after is not None:
                        headers["Retry-After"] = injected.retry_after
                    raise ApiFailure(injected.status, f"injected failure {injected.status}")
                limit = fake.over_rate_limit(path)
                if limit is not None:
                    raise ApiFailure(
                        429,
                        f"Request failed. You've reached the max requests per second ({limit}) "
                        f"for {path.rsplit('/', 1)[-1]} in this namespace. Retry with backoff.",
                    )
                status, out = fake.handle(self.command, self.path, body)
            except ApiFailure as exc:
                status, out = exc.status, exc.body()
            self._reply(status, out, headers)

        def _reply(self, status: int, out: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(out).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

        do_GET = do_POST = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: pytest output stays readable

    return Handler
