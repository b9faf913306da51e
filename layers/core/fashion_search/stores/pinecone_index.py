"""The Pinecone adapter: the real ``pinecone`` SDK (10.x, REST data plane).

Everything Pinecone would refuse is refused first by the port (``stores.vectors``), with our
named errors, so a bad record never costs a round trip and never fails half a batch: filters
(``InvalidFilter``), ids, vector dimension and values, metadata types and the 40 KB per-vector
cap. Pinecone's request limits are declared here, on the class, and the port cuts requests to
them (https://docs.pinecone.io/reference/api/database-limits): at most 1000 vectors and 2 MB per
upsert, 1000 ids per fetch and delete, top_k up to 10,000. Fetch sends ids in the URL, so this
adapter also keeps one fetch's query string short.

Retries: the SDK's transport already retries 429, 408 and 5xx answers and connection errors or
timeouts, with decorrelated-jitter backoff that honours ``Retry-After`` (3 retries, a per-host
retry budget). We do not stack a second loop on top; what is still failing after that becomes
``TransientStoreError`` (worth retrying later: ingest leaves the record for redelivery), and any
other vendor error becomes ``StoreError``, always ``raise ... from exc``.

Hybrid (issue #16): indexes are created with the ``dotproduct`` metric and records carry the
product's sparse lexical values beside its dense vector, so one query ranks by
``alpha * dense + (1 - alpha) * sparse`` server-side: the query's dense values are scaled by
``alpha`` and its sparse values by ``1 - alpha`` (Pinecone's single-index hybrid pattern,
https://docs.pinecone.io/guides/search/hybrid-search/single-index; sparse values need a
dotproduct index). Dense values are stored unit length, so the dense dot product is the cosine
a cosine index gives. A cosine index made before keeps working, dense only (``hybrid`` False).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import numpy as np
from pinecone import Pinecone
from pinecone.errors.exceptions import (
    ApiError,
    ConflictError,
    NotFoundError,
    PineconeConnectionError,
    PineconeError,
    PineconeTimeoutError,
    RateLimitError,
    ServiceError,
)

from fashion_search.errors import ConfigError, StoreError, TransientStoreError
from fashion_search.stores.filters import validate_record_id
from fashion_search.stores.vectors import CheckedRecord, VectorIndex, VectorQuery
from fashion_search.types import Match, SparseVector, VectorRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

# Fetch sends ids in the query string: keep the URL well under common 16-64 KB line limits.
MAX_FETCH_QUERY_CHARS = 12_000
LIST_PAGE = 100
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_METRICS = ("cosine", "dotproduct")
# Pinecone refuses an all-zero dense query; alpha = 0 (words only) keeps a negligible one.
_MIN_DENSE_SCALE = 1e-6


def _translate(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (RateLimitError, ServiceError, PineconeTimeoutError, PineconeConnectionError) as exc:
        raise TransientStoreError(f"Pinecone {what} failed, retry later: {exc.message}") from exc
    except ApiError as exc:
        if exc.status_code in _TRANSIENT_STATUS:
            raise TransientStoreError(f"Pinecone {what} failed: {exc.message}") from exc
        raise StoreError(f"Pinecone refused the {what}: {exc.message}") from exc
    except PineconeError as exc:
        raise StoreError(f"Pinecone {what} failed: {exc.message}") from exc


def _sparse(sparse: SparseVector, scale: float = 1.0) -> dict[str, Any]:
    return {"indices": list(sparse.indices), "values": [float(v) * scale for v in sparse.values]}


class PineconeVectorIndex(VectorIndex):
    """A serverless Pinecone index (cosine), created on first use if it does not exist.

    ``host`` is the index's data-plane host: when given, the control plane is not called (no
    describe, no create) and the dimension is checked against ``describe_index_stats``.
    ``client`` is an injected ``pinecone.Pinecone`` (tests point it at a local server).
    """

    # https://docs.pinecone.io/reference/api/database-limits, applied by the port.
    max_top_k = 10_000
    max_ids = 1000  # per fetch and per delete
    max_upsert_records = 1000
    max_upsert_bytes = 2 * 1024 * 1024

    def __init__(
        self,
        index_name: str,
        *,
        api_key: str,
        dimension: int,
        host: str | None = None,
        cloud: str = "aws",
        region: str = "us-east-1",
        client: Pinecone | None = None,
        timeout_s: float = 30.0,
        ready_timeout_s: int = 300,
    ) -> None:
        self._dimension = dimension
        self._name = index_name
        self._owns_client = client is None
        self._metric = "cosine"
        try:
            self._client = client or Pinecone(api_key=api_key, timeout=timeout_s)
        except PineconeError as exc:
            raise ConfigError(f"cannot create the Pinecone client: {exc.message}") from exc
        try:
            index_host = host or self._ensure_index(cloud, region, ready_timeout_s)
            self._index = _translate("connect", lambda: self._client.index(host=index_host))
            if host:
                stats = _translate("stats", self._index.describe_index_stats)
                self._check_dimension(stats.dimension)
                self._check_metric(getattr(stats, "metric", None) or "cosine")
        except BaseException:
            self.close()  # no half-built adapter holding sockets
            raise

    def _describe(self) -> Any:
        try:
            return self._client.indexes.describe(self._name)
        except NotFoundError:
            return None

    def _create(self, cloud: str, region: str, ready_timeout_s: int) -> Any:
        log.info("creating Pinecone index %s (%d-d, dotproduct)", self._name, self._dimension)
        dense = {"type": "dense_vector", "dimension": self._dimension, "metric": "dotproduct"}
        try:
            return self._client.indexes.create(
                name=self._name,
                schema={"fields": {"_values": dense}},
                deployment={"deployment_type": "managed", "cloud": cloud, "region": region},
                timeout=ready_timeout_s,
            )
        except ConflictError:  # another process created it first
            return self._client.indexes.describe(self._name)

    def _ensure_index(self, cloud: str, region: str, ready_timeout_s: int) -> str:
        model = _translate("describe", self._describe)
        if model is None:
            model = _translate(
                "index creation", lambda: self._create(cloud, region, ready_timeout_s)
            )
        field = model.schema.fields.get("_values")
        self._check_dimension(getattr(field, "dimension", None))
        self._check_metric(getattr(field, "metric", None))
        if not model.host:
            raise TransientStoreError(f"Pinecone index {self._name!r} has no host yet")
        return str(model.host)

    def _check_dimension(self, found: int | None) -> None:
        if found is not None and found != self._dimension:
            raise ConfigError(
                f"Pinecone index {self._name!r} holds {found}-d vectors but the model makes "
                f"{self._dimension}-d ones: use another index",
                field="FASHION_SEARCH_AWS__PINECONE_INDEX",
            )

    def _check_metric(self, metric: str | None) -> None:
        if metric not in _METRICS:
            raise ConfigError(
                f"Pinecone index {self._name!r} uses metric {metric!r}; this service needs "
                "dotproduct (hybrid) or cosine (dense only)",
                field="FASHION_SEARCH_AWS__PINECONE_INDEX",
            )
        self._metric = metric
        if metric == "cosine":
            log.warning(
                "Pinecone index %s is cosine: search matches pictures only, not words; a "
                "dotproduct index (reindex into a new one) adds them",
                self._name,
            )

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def hybrid(self) -> bool:
        """Whether records carry sparse values and queries may mix them in."""
        return self._metric == "dotproduct"

    def close(self) -> None:
        """Close the data-plane connections, and the client when this adapter made it."""
        if hasattr(self, "_index"):
            self._index.close()
        if self._owns_client:
            self._client.close()

    def _upsert(self, records: Sequence[CheckedRecord], namespace: str) -> int:
        batch: list[dict[str, Any]] = []
        for record in records:
            item: dict[str, Any] = {
                "id": remote_id(record.id),
                "values": record.values.tolist(),
                "metadata": dict(record.metadata),
            }
            if self.hybrid and record.sparse is not None and record.sparse.indices:
                item["sparse_values"] = _sparse(record.sparse)
            batch.append(item)
        response = _translate(
            "upsert", partial(self._index.upsert, vectors=batch, namespace=namespace)
        )
        return int(response.upserted_count)

    def _query(self, query: VectorQuery) -> list[Match]:
        response = _translate(
            "query",
            lambda: self._index.query(
                vector=query.vector.tolist(),
                top_k=query.top_k,
                filter=query.filter or None,
                include_metadata=query.include_metadata,
                include_values=False,
                namespace=query.namespace,
            ),
        )
        return [
            Match(id=local_id(m.id), score=float(m.score), metadata=dict(m.metadata or {}))
            for m in response.matches
        ]

    def _query_hybrid(self, query: VectorQuery) -> list[Match]:
        """One sparse-dense query: the dense values scaled by ``alpha``, the sparse ones by
        ``1 - alpha``, so Pinecone's dot product is the fused score."""
        alpha, sparse = query.alpha, query.sparse
        values = (query.vector.astype(np.float64) * max(alpha, _MIN_DENSE_SCALE)).tolist()
        kwargs: dict[str, Any] = {}
        if sparse is not None and sparse.indices and alpha < 1.0:
            kwargs["sparse_vector"] = _sparse(sparse, 1.0 - alpha)
        response = _translate(
            "query",
            lambda: self._index.query(
                vector=values,
                top_k=query.top_k,
                filter=query.filter or None,
                include_metadata=False,
                include_values=False,
                namespace=query.namespace,
                **kwargs,
            ),
        )
        return [Match(id=local_id(m.id), score=float(m.score)) for m in response.matches]

    def _fetch(self, ids: Sequence[str], namespace: str) -> dict[str, VectorRecord]:
        out: dict[str, VectorRecord] = {}
        for chunk in _fetch_chunks([remote_id(i) for i in ids]):
            response = _translate(
                "fetch", partial(self._index.fetch, ids=chunk, namespace=namespace)
            )
            for stored_id, vector in response.vectors.items():
                record_id = local_id(stored_id)
                out[record_id] = VectorRecord(
                    record_id, np.asarray(vector.values, dtype=np.float32), vector.metadata or {}
                )
        return out

    def _delete(self, ids: Sequence[str], namespace: str) -> None:
        remote = [remote_id(i) for i in ids]
        _translate("delete", partial(self._index.delete, ids=remote, namespace=namespace))

    def engine(self, *, namespace: str = "") -> str:
        """What answers queries (``/health``): Pinecone's service, whatever it runs inside."""
        return "pinecone"

    def version(self, *, namespace: str = "") -> str:
        """The namespace's vector count: the only thing Pinecone's index stats say that moves
        with its contents (a replaced vector keeps it; an add and a delete in between cancel)."""
        return f"count-{self.count(namespace=namespace)}"

    def count(self, *, namespace: str = "") -> int:
        stats = _translate("stats", self._index.describe_index_stats)
        summary = stats.namespaces.get(namespace)
        return 0 if summary is None else int(summary.vector_count)

    def iter_ids(self, *, namespace: str = "") -> Iterator[str]:
        token: str | None = None
        while True:
            page = _translate(
                "list",
                partial(
                    self._index.list_paginated,
                    namespace=namespace,
                    limit=LIST_PAGE,
                    pagination_token=token,
                ),
            )
            for item in page.vectors:
                if item.id is not None:
                    yield local_id(item.id)
            token = page.pagination.next if page.pagination else None
            if not token:
                return


# Pinecone (and its SDK) take ASCII ids only, but image ids come from object keys such as
# "red flower é". Percent-encode what is not printable ASCII, and "%" itself, so the mapping is
# reversible and plain ASCII ids are stored unchanged.
_ID_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def remote_id(record_id: str) -> str:
    return validate_record_id(quote(validate_record_id(record_id), safe=_ID_SAFE))


def local_id(stored_id: str) -> str:
    return unquote(stored_id)


def _fetch_chunks(ids: list[str]) -> Iterator[list[str]]:
    """``ids`` (at most ``max_ids``, cut by the port) in requests whose URL stays short."""
    chunk: list[str] = []
    chars = 0
    for record_id in ids:
        cost = len(quote(record_id, safe="")) + 5  # "&ids="
        if chunk and chars + cost > MAX_FETCH_QUERY_CHARS:
            yield chunk
            chunk, chars = [], 0
        chunk.append(record_id)
        chars += cost
    if chunk:
        yield chunk
