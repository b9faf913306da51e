"""One contract for every vector index: the embedded one (exact, and with its approximate graph
serving from the first vector), and Pinecone through the real SDK against a local server speaking
Pinecone's REST API (tests/fakes/pinecone_api.py).

Then what only one adapter has: Pinecone's request limits, retries and error translation; the
embedded index's durability (kill -9), isolation (a concurrent reader process) and reopening.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from fashion_search.errors import (
    ConfigError,
    InvalidFilter,
    InvalidInput,
    PayloadTooLarge,
    StoreError,
    TransientStoreError,
)
from fashion_search.stores.embedded.vector_index import (
    AnnParams,
    EmbeddedVectorIndex,
    HalfParams,
)
from fashion_search.stores.filters import matches
from fashion_search.stores.pinecone_index import PineconeVectorIndex, remote_id
from fashion_search.stores.vectors import VectorIndex
from fashion_search.types import SparseVector, VectorRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pinecone import Pinecone

from tests.fakes.pinecone_api import FakePinecone

DIM = 8
MakeIndex = Callable[[int], VectorIndex]
# The approximate graph answers from the first vector on, built in the query (not a thread), and
# never hands a filtered query to the exact scan: the contract runs on the graph itself.
ANN = AnnParams(min_vectors=1, exact_below=0.0, background=False)
# The exact scan reads fp16 rows, grown inside any query that meets new rows: they cover all.
HALF = HalfParams(tail_rows=0, background=False)


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def record(i: int, **metadata: Any) -> VectorRecord:
    return VectorRecord(f"img-{i:05d}", unit(i), dict(metadata))


@pytest.fixture(params=["embedded", "embedded-fp16", "embedded-ann", "pinecone"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_index(adapter: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeIndex]:
    closers: list[Callable[[], None]] = []

    def make(dimension: int = DIM) -> VectorIndex:
        if adapter.startswith("embedded"):
            index = EmbeddedVectorIndex(
                tmp_path / uuid.uuid4().hex,
                dimension=dimension,
                ann=ANN if adapter == "embedded-ann" else None,
                half=HALF if adapter == "embedded-fp16" else None,
            )
            closers.append(index.close)
            return index
        fake: FakePinecone = request.getfixturevalue("pinecone_fake")
        client = Pinecone(api_key=fake.api_key, host=fake.url)
        pinecone_index = PineconeVectorIndex(
            f"t-{uuid.uuid4().hex[:12]}", api_key=fake.api_key, dimension=dimension, client=client
        )
        closers.extend([client.close, pinecone_index.close])
        return pinecone_index

    yield make
    for close in reversed(closers):
        close()


@pytest.fixture
def index(make_index: MakeIndex) -> VectorIndex:
    return make_index(DIM)


# -- the contract -------------------------------------------------------------------------------


def test_query_ranks_by_cosine_and_returns_metadata(index: VectorIndex) -> None:
    records = [record(i, colour=["Red", "Blue"][i % 2], year=2010 + i) for i in range(20)]
    assert index.upsert(records) == 20
    q = unit(3) + 0.3 * unit(99)
    got = index.query(q, top_k=5)
    expected = sorted(records, key=lambda r: -float(r.values @ q / np.linalg.norm(q)))[:5]
    assert [m.id for m in got] == [r.id for r in expected]
    assert got[0].id == "img-00003"
    assert got[0].metadata == {"colour": "Blue", "year": 2013}
    assert got[0].score == pytest.approx(float(unit(3) @ q / np.linalg.norm(q)), abs=1e-5)
    bare = index.query(q, top_k=2, include_metadata=False)
    assert [m.id for m in bare] == [r.id for r in expected[:2]]
    assert all(m.metadata == {} for m in bare)
    assert [m.id for m in index.query(q, top_k=50)][:5] == [r.id for r in expected]
    assert len(index.query(q, top_k=50)) == 20


def test_filtered_query_returns_only_matching(index: VectorIndex) -> None:
    index.upsert([record(i, colour=["Red", "Blue"][i % 2], year=2010 + i) for i in range(20)])
    got = index.query(unit(0), top_k=20, filter={"colour": "Red", "year": {"$gte": 2014}})
    assert sorted(m.id for m in got) == [f"img-{i:05d}" for i in range(4, 20, 2)]
    assert index.query(unit(0), top_k=5, filter={"colour": "Green"}) == []


def test_upsert_replaces_by_id(index: VectorIndex) -> None:
    index.upsert([record(1, colour="Red"), record(2, colour="Red")])
    index.upsert([VectorRecord("img-00001", unit(500), {"colour": "Blue"})])
    assert index.count() == 2
    top = index.query(unit(500), top_k=1)[0]
    assert (top.id, top.metadata) == ("img-00001", {"colour": "Blue"})
    assert [m.id for m in index.query(unit(1), top_k=5, filter={"colour": "Red"})] == ["img-00002"]


def test_fetch_returns_stored_records_and_skips_missing(index: VectorIndex) -> None:
    index.upsert([record(1, tags=["a", "b"], sale=True), record(2)])
    got = index.fetch(["img-00001", "nope", "img-00002"])
    assert set(got) == {"img-00001", "img-00002"}
    assert got["img-00001"].metadata == {"tags": ["a", "b"], "sale": True}
    np.testing.assert_allclose(got["img-00001"].values, unit(1), atol=1e-6)
    assert index.fetch([]) == {}


def test_version_changes_with_the_contents_only(index: VectorIndex) -> None:
    # Clients (the UI's result cache) key on it: a new image must be a new version.
    empty = index.version()
    assert isinstance(empty, str) and index.version() == empty
    index.upsert([record(i) for i in range(3)])
    added = index.version()
    assert added != empty and index.version() == added
    index.query(unit(1), top_k=2)
    index.fetch(["img-00001"])
    assert index.version() == added  # reads change nothing
    index.delete(["img-00001"])
    assert index.version() not in (empty, added)


def test_delete_and_count(index: VectorIndex) -> None:
    index.upsert([record(i) for i in range(5)])
    index.delete(["img-00001", "img-00003", "never-there"])
    index.delete(["img-00001"])  # twice is a no-op
    assert index.count() == 3
    assert sorted(index.iter_ids()) == ["img-00000", "img-00002", "img-00004"]
    assert "img-00001" not in {m.id for m in index.query(unit(1), top_k=10)}


def test_ids_from_unicode_keys_round_trip_everywhere(index: VectorIndex) -> None:
    # Image ids come from object keys ("red flower é.jpg"); Pinecone takes ASCII ids only.
    ids = ["red flower é", "tops/50%-off", "tops/50%25-off", "plain-ascii"]
    index.upsert([VectorRecord(i, unit(n), {"n": n}) for n, i in enumerate(ids)])
    assert index.count() == 4
    assert sorted(index.iter_ids()) == sorted(ids)
    assert index.query(unit(0), top_k=1)[0].id == "red flower é"
    assert set(index.fetch(ids)) == set(ids)
    index.delete(["red flower é", "tops/50%-off"])
    assert sorted(index.iter_ids()) == ["plain-ascii", "tops/50%25-off"]


def test_namespaces_are_separate(index: VectorIndex) -> None:
    index.upsert([record(1)], namespace="a")
    index.upsert([record(2), record(3)], namespace="b")
    assert (index.count(namespace="a"), index.count(namespace="b"), index.count()) == (1, 2, 0)
    assert [m.id for m in index.query(unit(2), top_k=5, namespace="a")] == ["img-00001"]
    assert index.fetch(["img-00002"], namespace="a") == {}
    assert index.query(unit(2), top_k=5, namespace="empty") == []


def test_iter_ids_pages_through_everything(index: VectorIndex) -> None:
    index.upsert([record(i) for i in range(1234)])
    ids = list(index.iter_ids())
    assert sorted(ids) == [f"img-{i:05d}" for i in range(1234)]
    assert index.count() == 1234


BAD_FILTERS: list[Any] = [
    {"colour": {"$regex": "R"}},
    {"$not": {"colour": "Red"}},
    {"year": {"$gt": "2010"}},
    {"colour": ["Red"]},
    {"$or": []},
]


@pytest.mark.parametrize("bad", BAD_FILTERS)
def test_bad_filter_is_refused_before_any_request(
    adapter: str, index: VectorIndex, bad: Any, request: pytest.FixtureRequest
) -> None:
    before = (
        request.getfixturevalue("pinecone_fake").count("/query") if adapter == "pinecone" else 0
    )
    with pytest.raises(InvalidFilter):
        index.query(unit(1), top_k=3, filter=bad)
    if adapter == "pinecone":
        assert request.getfixturevalue("pinecone_fake").count("/query") == before


def test_bad_input_is_refused_with_named_errors(index: VectorIndex) -> None:
    with pytest.raises(InvalidInput, match="dimension"):
        index.upsert([VectorRecord("x", np.ones(DIM + 1, dtype=np.float32))])
    with pytest.raises(InvalidInput, match="zeros"):
        index.upsert([VectorRecord("x", np.zeros(DIM, dtype=np.float32))])
    with pytest.raises(InvalidInput, match="null"):
        index.upsert([VectorRecord("x", unit(1), {"colour": None})])  # type: ignore[dict-item]
    with pytest.raises(InvalidInput):
        index.upsert([VectorRecord("x", unit(1), {"n": [1, 2]})])  # type: ignore[list-item]
    with pytest.raises(PayloadTooLarge):
        index.upsert([VectorRecord("x", unit(1), {"blob": "x" * 41_000})])
    with pytest.raises(InvalidInput):
        index.upsert([VectorRecord("", unit(1))])
    for top_k in (0, 10_001):
        with pytest.raises(InvalidInput, match="top_k"):
            index.query(unit(1), top_k=top_k)
    assert index.count() == 0


def test_every_adapter_names_the_same_bad_input(adapter: str, index: VectorIndex) -> None:
    """The port checks before any adapter code: the embedded index, which never needs sparse
    values or an id to fetch, refuses exactly what Pinecone refuses, with the same error."""
    malformed = [SparseVector([3, 3], [1.0, 2.0]), SparseVector([-1], [1.0]), SparseVector([1], [])]
    for sparse in malformed:
        with pytest.raises(InvalidInput) as caught:
            index.upsert([VectorRecord("x", unit(1), {}, sparse)])
        assert caught.value.field == "sparse"
    for call in (lambda: index.fetch(["ok", ""]), lambda: index.delete([""])):
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.field == "id"
    with pytest.raises(InvalidInput) as caught:
        index.query_hybrid(unit(1), SparseVector([1], [1.0]), alpha=1.5, top_k=1)
    assert caught.value.field == "alpha"
    assert index.count() == 0


def test_an_id_given_twice_in_one_call_is_written_once(index: VectorIndex) -> None:
    first, second = unit(1), unit(2)
    written = index.upsert(
        [VectorRecord("a", first, {"v": 1}), record(3), VectorRecord("a", second, {"v": 2})]
    )
    assert written == 2 and index.count() == 2
    fetched = index.fetch(["a", "a", "img-00003", "a"])
    assert sorted(fetched) == ["a", "img-00003"]
    assert fetched["a"].metadata == {"v": 2}  # the last write of an id wins
    assert fetched["a"].values == pytest.approx(second, abs=1e-6)
    index.delete(["a", "a"])
    assert index.count() == 1


# -- the property: same ids as brute force, on every adapter ------------------------------------

COLOURS = ["Red", "Blue", "Green"]
TAGS = ["a", "b", "c"]
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "colour": st.sampled_from(COLOURS),
    "year": st.sampled_from([2010, 2011, 2012, 2012.5, 2013]),
    "tags": st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
    "sale": st.booleans(),
}
SCALARS = st.sampled_from([*COLOURS, *TAGS, 2010, 2011, 2012.5, 2013, True, False, "2011"])
NUMBERS = st.sampled_from([2009, 2010, 2011.0, 2012, 2012.5, 2014])
FIELDS = st.sampled_from([*FIELD_VALUES, "missing"])
IN_VALUES = st.lists(st.sampled_from([*COLOURS, *TAGS, 2010, 2012.5, "2011"]), max_size=3)

LEAF = st.one_of(
    st.builds(lambda f, v: {f: v}, FIELDS, SCALARS),
    st.builds(lambda f, op, v: {f: {op: v}}, FIELDS, st.sampled_from(["$eq", "$ne"]), SCALARS),
    st.builds(
        lambda f, op, v: {f: {op: v}},
        FIELDS,
        st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
        NUMBERS,
    ),
    st.builds(lambda f, op, v: {f: {op: v}}, FIELDS, st.sampled_from(["$in", "$nin"]), IN_VALUES),
    st.builds(lambda f, v: {f: {"$exists": v}}, FIELDS, st.booleans()),
)
FILTERS = st.recursive(
    LEAF,
    lambda inner: st.builds(
        lambda op, parts: {op: parts},
        st.sampled_from(["$and", "$or"]),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=5,
)
METADATA = st.fixed_dictionaries({}, optional=FIELD_VALUES)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    metadata=st.lists(METADATA, min_size=1, max_size=25),
    filters=st.lists(FILTERS, min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_same_ids_as_brute_force(
    index: VectorIndex, metadata: list[dict[str, Any]], filters: list[Any], seed: int
) -> None:
    namespace = uuid.uuid4().hex  # one fresh namespace per example, one index per test
    vectors = [unit(seed * 100 + i) for i in range(len(metadata))]
    records = [
        VectorRecord(f"r{i}", v, m) for i, (v, m) in enumerate(zip(vectors, metadata, strict=True))
    ]
    index.upsert(records, namespace=namespace)
    q = unit(seed + 7)
    for f in filters:
        got = index.query(q, top_k=len(records), filter=f, namespace=namespace)
        expected = {r.id: float(r.values @ q) for r in records if matches(f, r.metadata)}
        assert {m.id for m in got} == set(expected), f
        for m in got:
            assert m.score == pytest.approx(expected[m.id], abs=1e-5)
        assert [m.score for m in got] == sorted((m.score for m in got), reverse=True)


# -- Pinecone only: limits, index creation, retries, error translation --------------------------


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The SDK's backoff sleeps, recorded instead of slept (the SDK's documented test seam)."""
    from pinecone._internal import http_client

    recorded: list[float] = []
    monkeypatch.setattr(http_client, "_retry_sleep", recorded.append)
    return recorded


def pinecone_index(
    fake: FakePinecone, *, dimension: int = DIM, name: str | None = None, timeout_s: float = 30.0
) -> tuple[PineconeVectorIndex, Pinecone]:
    client = Pinecone(api_key=fake.api_key, host=fake.url, timeout=timeout_s)
    name = name or f"t-{uuid.uuid4().hex[:12]}"
    return PineconeVectorIndex(name, api_key="", dimension=dimension, client=client), client


@pytest.fixture
def pinecone_pair(pinecone_fake: FakePinecone) -> Iterator[PineconeVectorIndex]:
    index, client = pinecone_index(pinecone_fake)
    yield index
    index.close()
    client.close()


def test_pinecone_creates_a_missing_index_once(pinecone_fake: FakePinecone) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    first, client = pinecone_index(pinecone_fake, name=name)
    second = PineconeVectorIndex(name, api_key="", dimension=DIM, client=client)
    created = pinecone_fake.indexes[name]
    # dotproduct: what sparse-dense (hybrid) records need; unit vectors rank as by cosine.
    assert (created.dimension, created.metric) == (DIM, "dotproduct")
    assert first.hybrid and second.hybrid
    assert sum(1 for s in pinecone_fake.seen if (s.method, s.path) == ("POST", "/indexes")) == 1
    for index in (first, second):
        index.close()
    client.close()


@pytest.mark.parametrize(("dimension", "metric"), [(DIM + 1, "dotproduct"), (DIM, "euclidean")])
def test_pinecone_refuses_an_index_of_another_shape(
    pinecone_fake: FakePinecone, dimension: int, metric: str
) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    pinecone_fake.create_index(name, dimension=dimension, metric=metric)
    client = Pinecone(api_key=pinecone_fake.api_key, host=pinecone_fake.url)
    with pytest.raises(ConfigError, match=name):
        PineconeVectorIndex(name, api_key="", dimension=DIM, client=client)
    client.close()


def sparse_record(i: int, terms: dict[int, float]) -> VectorRecord:
    ordered = sorted(terms)
    return VectorRecord(
        f"img-{i:05d}", unit(i), {}, sparse=SparseVector(ordered, [terms[t] for t in ordered])
    )


def test_pinecone_hybrid_ranks_by_alpha_dense_plus_rest_sparse(
    pinecone_pair: PineconeVectorIndex,
) -> None:
    words = {1: {7: 1.0}, 2: {7: 0.5, 9: 1.0}, 3: {}}  # record -> sparse terms
    pinecone_pair.upsert([sparse_record(i, t) for i, t in words.items()])
    query = unit(3)
    sparse = SparseVector([7, 9], [0.25, 0.75])
    for alpha in (0.0, 0.3, 0.5, 1.0):
        got = pinecone_pair.query_hybrid(query, sparse, alpha=alpha, top_k=3)
        want = {
            f"img-{i:05d}": alpha * float(unit(i) @ query)
            + (1 - alpha)
            * sum(w * t.get(k, 0.0) for k, w in zip([7, 9], [0.25, 0.75], strict=True))
            for i, t in words.items()
        }
        assert [m.id for m in got] == sorted(want, key=lambda i: -want[i])
        assert all(m.score == pytest.approx(want[m.id], abs=1e-5) for m in got)
    # Plain dense queries on the dotproduct index still score by cosine.
    plain = pinecone_pair.query(query * 3.0, top_k=1)
    assert plain[0].id == "img-00003" and plain[0].score == pytest.approx(1.0, abs=1e-5)


def test_pinecone_cosine_index_stays_dense_only(pinecone_fake: FakePinecone) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    pinecone_fake.create_index(name, dimension=DIM, metric="cosine")
    index, client = pinecone_index(pinecone_fake, name=name)
    assert not index.hybrid
    index.upsert([sparse_record(1, {7: 1.0})])  # sparse values stay home: no 400
    assert [m.id for m in index.query(unit(1), top_k=1)] == ["img-00001"]
    with pytest.raises(InvalidInput, match="hybrid"):
        index.query_hybrid(unit(1), SparseVector([7], [1.0]), alpha=0.5, top_k=1)
    index.close()
    client.close()


def test_pinecone_with_a_host_skips_the_control_plane(pinecone_fake: FakePinecone) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    pinecone_fake.create_index(name, dimension=DIM)
    host = pinecone_fake.host_of(name)
    index = PineconeVectorIndex(name, api_key=pinecone_fake.api_key, dimension=DIM, host=host)
    index.upsert([record(1)])
    assert index.count() == 1
    index.close()
    assert not [s for s in pinecone_fake.seen if s.path.startswith("/indexes")]
    with pytest.raises(ConfigError, match=f"{DIM}-d"):
        PineconeVectorIndex(name, api_key=pinecone_fake.api_key, dimension=DIM + 1, host=host)


def test_pinecone_batches_upserts_within_count_and_size_limits(pinecone_fake: FakePinecone) -> None:
    small, client = pinecone_index(pinecone_fake)
    assert small.upsert([record(i) for i in range(2500)]) == 2500
    counts = [s.items for s in pinecone_fake.seen if s.path.endswith("/vectors/upsert")]
    assert counts == [1000, 1000, 500]
    pinecone_fake.clear()
    wide, wide_client = pinecone_index(pinecone_fake, dimension=1536)
    notes = "x" * 20_000  # wide vectors plus large metadata hit 2 MB long before 1000 vectors
    records = [VectorRecord(f"w{i}", unit(i, 1536), {"notes": notes}) for i in range(150)]
    assert wide.upsert(records) == 150
    sizes = [s.body_bytes for s in pinecone_fake.seen if s.path.endswith("/vectors/upsert")]
    assert len(sizes) > 1 and max(sizes) <= 2 * 1024 * 1024
    assert wide.count() == 150
    for closeable in (small, wide, client, wide_client):
        closeable.close()


def test_pinecone_fetch_and_delete_of_2500_ids_arrive_whole_in_three_requests(
    pinecone_fake: FakePinecone, pinecone_pair: PineconeVectorIndex
) -> None:
    """Callers hand over any number of ids; the port cuts them to Pinecone's 1000 per request
    (declared by the adapter), so nothing is lost and nothing is refused."""
    ids = [f"i{i}" for i in range(2500)]
    pinecone_pair.upsert([VectorRecord(i, unit(n)) for n, i in enumerate(ids)])
    pinecone_fake.clear()
    fetched = pinecone_pair.fetch([*ids, *ids[:10]])  # repeated ids are asked for once
    assert sorted(fetched) == sorted(ids)
    assert [s.items for s in pinecone_fake.seen if s.path.endswith("/fetch")] == [1000, 1000, 500]
    pinecone_pair.delete(ids)
    assert pinecone_pair.count() == 0
    deletes = [s.items for s in pinecone_fake.seen if s.path.endswith("/delete")]
    assert deletes == [1000, 1000, 500]


def test_pinecone_fetch_keeps_each_url_short(
    pinecone_fake: FakePinecone, pinecone_pair: PineconeVectorIndex
) -> None:
    """Fetch sends its ids in the query string: longer ids take more requests, never a URL
    over the adapter's 12,000 characters of ids."""
    ids = [f"images/tops/{i:05d}-é.jpg" for i in range(1500)]
    pinecone_pair.upsert([VectorRecord(i, unit(n)) for n, i in enumerate(ids)])
    pinecone_fake.clear()
    assert sorted(pinecone_pair.fetch(ids)) == sorted(ids)
    per_request = [s.items for s in pinecone_fake.seen if s.path.endswith("/fetch")]
    assert sum(per_request) == 1500 and len(per_request) > 2
    assert max(per_request) * len(quote(remote_id(ids[0]), safe="")) <= 12_000


def test_pinecone_upsert_of_a_repeated_id_sends_it_once(
    pinecone_fake: FakePinecone, pinecone_pair: PineconeVectorIndex
) -> None:
    pinecone_fake.clear()
    assert pinecone_pair.upsert([record(1), record(2), record(1)]) == 2
    assert [s.items for s in pinecone_fake.seen if s.path.endswith("/vectors/upsert")] == [2]


def test_pinecone_retries_5xx_and_429_with_backoff(
    pinecone_fake: FakePinecone, pinecone_pair: PineconeVectorIndex, sleeps: list[float]
) -> None:
    pinecone_fake.fail_next("/vectors/upsert", times=2, status=503)
    assert pinecone_pair.upsert([record(1)]) == 1
    assert pinecone_fake.count("/vectors/upsert") == 3
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)
    pinecone_fake.fail_next("/query", times=1, status=429, retry_after="0")
    assert [m.id for m in pinecone_pair.query(unit(1), top_k=1)] == ["img-00001"]
    assert pinecone_fake.count("/query") == 2


def test_pinecone_still_failing_after_retries_is_transient(
    pinecone_fake: FakePinecone, pinecone_pair: PineconeVectorIndex, sleeps: list[float]
) -> None:
    from pinecone.errors.exceptions import PineconeError

    pinecone_fake.fail_next("/query", times=20, status=503)
    with pytest.raises(TransientStoreError) as caught:
        pinecone_pair.query(unit(1), top_k=1)
    assert isinstance(caught.value.__cause__, PineconeError)
    pinecone_fake.fail_next("/vectors/delete", status=400)
    with pytest.raises(StoreError) as refused:
        pinecone_pair.delete(["a"])
    assert not isinstance(refused.value, TransientStoreError)


def test_pinecone_retries_a_timed_out_request(
    pinecone_fake: FakePinecone, sleeps: list[float]
) -> None:
    index, client = pinecone_index(pinecone_fake, timeout_s=0.5)
    index.upsert([record(1)])
    pinecone_fake.fail_next("/query", delay_s=1.5)  # the first attempt stalls past the timeout
    assert [m.id for m in index.query(unit(1), top_k=1)] == ["img-00001"]
    assert pinecone_fake.count("/query") == 2
    index.close()
    client.close()


def test_pinecone_wrong_key_is_a_store_error(pinecone_fake: FakePinecone) -> None:
    client = Pinecone(api_key="wrong-key", host=pinecone_fake.url)
    with pytest.raises(StoreError, match="Invalid API Key"):
        PineconeVectorIndex("t-any", api_key="", dimension=DIM, client=client)
    client.close()


# -- embedded only: durability, isolation, reopening ---------------------------------------------

WRITER = """
import sys
import numpy as np
from pathlib import Path
from fashion_search.stores.embedded.vector_index import AnnParams, EmbeddedVectorIndex
from fashion_search.types import VectorRecord

def vec(batch, j):
    v = np.random.default_rng(batch * 10 + j).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)

index = EmbeddedVectorIndex(Path(sys.argv[1]), dimension=8)
batch = 0
while True:
    index.upsert([VectorRecord(f"b{batch}-{j}", vec(batch, j), {"batch": batch}) for j in range(5)])
    print(batch, flush=True)  # acknowledged: upsert returned
    batch += 1
"""


def vec(batch: int, j: int) -> np.ndarray:
    v = np.random.default_rng(batch * 10 + j).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    import subprocess
    import sys

    path = tmp_path / "index"
    EmbeddedVectorIndex(path, dimension=8).close()  # created before the reader opens it
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    yield path, proc
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_acknowledged_upserts_survive_kill_9(writer: tuple[Path, Any]) -> None:
    import os
    import signal

    path, proc = writer
    acked = [int(proc.stdout.readline()) for _ in range(30)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    index = EmbeddedVectorIndex(path, dimension=8)
    stored = index.count()
    assert stored % 5 == 0 and stored >= 5 * len(acked)  # whole batches only, none lost
    got = index.fetch([f"b{b}-{j}" for b in acked for j in range(5)])
    assert len(got) == 5 * len(acked)
    np.testing.assert_allclose(got["b29-4"].values, vec(29, 4), atol=1e-6)
    assert [m.id for m in index.query(vec(7, 2), top_k=1)] == ["b7-2"]
    index.upsert([record(1)])  # still writable after the crash
    assert index.count() == stored + 1
    index.close()


ANN_WRITER = """
import sys
import numpy as np
from pathlib import Path
from fashion_search.stores.embedded.vector_index import AnnParams, EmbeddedVectorIndex
from fashion_search.types import VectorRecord

def vec(batch, j):
    v = np.random.default_rng(batch * 10 + j).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)

# Every query extends the graph by the rows it lacks and saves it: the kill lands mid-save often.
ann = AnnParams(min_vectors=1, tail_rows=0, background=False)
index = EmbeddedVectorIndex(Path(sys.argv[1]), dimension=8, ann=ann)
batch = 0
while True:
    index.upsert([VectorRecord(f"b{batch}-{j}", vec(batch, j), {"batch": batch}) for j in range(5)])
    print(batch, flush=True)  # acknowledged: upsert returned
    index.query(vec(batch, 0), top_k=3)
    batch += 1
"""


def test_a_graph_killed_mid_save_is_never_half_read(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from fashion_search.stores.embedded.ann import Graph

    path = tmp_path / "index"
    proc = subprocess.Popen(
        [sys.executable, "-c", ANN_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(40)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    saved = Graph.load(path / "ann-0-0.faiss", 8)  # the last whole graph the writer renamed
    assert saved is not None and 0 < saved.ntotal <= 5 * (len(acked) + 1)
    index = EmbeddedVectorIndex(path, dimension=8, ann=ANN)
    stored = index.count()
    assert stored % 5 == 0 and stored >= 5 * len(acked)
    for b in (0, 17, acked[-1]):
        got = index.query(vec(b, 3), top_k=5, filter={"batch": b})
        assert [m.id for m in got][0] == f"b{b}-3" and len(got) == 5
    assert index.engine() == "ann"
    assert not list(path.glob("*.tmp"))  # a graph the kill left half-written is swept
    index.upsert([VectorRecord("after", vec(999, 0))])  # still writable after the crash
    assert [m.id for m in index.query(vec(999, 0), top_k=1)] == ["after"]
    index.close()


def test_a_concurrent_reader_never_sees_a_partial_batch(writer: tuple[Path, Any]) -> None:
    path, proc = writer
    proc.stdout.readline()  # the writer is running
    reader = EmbeddedVectorIndex(path, dimension=8)
    seen_counts: set[int] = set()
    give_up = time.monotonic() + 30  # a bound on the loop, not a timing assertion
    while len(seen_counts) < 3 and time.monotonic() < give_up:
        count = reader.count()
        seen_counts.add(count)
        assert count % 5 == 0
        last = count // 5 - 1
        got = reader.query(vec(last, 3), top_k=10, filter={"batch": last})
        assert sorted(m.id for m in got) == [f"b{last}-{j}" for j in range(5)]
        assert got[0].id == f"b{last}-3" and got[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(seen_counts) >= 3  # the writer really was committing while we read
    reader.close()


def test_reopen_keeps_everything_and_checks_the_schema(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "index"
    index = EmbeddedVectorIndex(path, dimension=DIM)
    index.upsert([record(i, colour=["Red", "Blue"][i % 2]) for i in range(300)])
    index.delete(["img-00000"])
    before = index.query(unit(5), top_k=7, filter={"colour": "Blue"})
    index.close()
    reopened = EmbeddedVectorIndex(path, dimension=DIM)
    assert reopened.count() == 299
    assert reopened.query(unit(5), top_k=7, filter={"colour": "Blue"}) == before
    reopened.close()
    with pytest.raises(StoreError, match="dimension|-d"):
        EmbeddedVectorIndex(path, dimension=DIM + 1)
    with sqlite3.connect(path / "index.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        EmbeddedVectorIndex(path, dimension=DIM)


def test_compaction_frees_replaced_rows_and_keeps_every_answer(tmp_path: Path) -> None:
    path = tmp_path / "index"
    index = EmbeddedVectorIndex(path, dimension=DIM)
    index.upsert([record(i, colour=["Red", "Blue"][i % 2]) for i in range(300)])
    index.upsert(
        [VectorRecord(f"img-{i:05d}", unit(1000 + i), {"colour": "Green"}) for i in range(200)]
    )
    index.delete([f"img-{i:05d}" for i in range(250, 300)])
    reader = EmbeddedVectorIndex(path, dimension=DIM)  # another handle, loaded before compaction

    def answers(ix: EmbeddedVectorIndex) -> tuple[Any, ...]:
        return (
            ix.query(unit(1005), top_k=5),
            ix.query(unit(7), top_k=5, filter={"colour": {"$in": ["Red", "Blue"]}}),
            {
                k: (v.values.tolist(), v.metadata)
                for k, v in ix.fetch(["img-00005", "img-00210"]).items()
            },
            ix.count(),
        )

    before = answers(reader)
    assert index.compact() == 250
    assert index.compact() == 0  # nothing left to free
    assert [p.name for p in path.glob("*.f32")] == ["ns-0-1.f32"]
    assert (path / "ns-0-1.f32").stat().st_size == 250 * DIM * 4
    assert answers(reader) == before == answers(index)
    index.upsert([record(5000, colour="Red")])  # appends to the new generation
    assert reader.count() == 251
    assert [m.id for m in reader.query(unit(5000), top_k=1)] == ["img-05000"]
    for ix in (index, reader):
        ix.close()
    assert answers(EmbeddedVectorIndex(path, dimension=DIM))[3] == 251


def test_compaction_starts_by_itself_once_most_rows_are_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fashion_search.stores.embedded import vector_index

    monkeypatch.setattr(vector_index, "COMPACT_MIN_DEAD", 10)
    index = EmbeddedVectorIndex(tmp_path / "index", dimension=DIM)
    index.upsert([record(i) for i in range(8)])
    for round_ in range(3):  # each round replaces all 8: dead rows pile up, then get freed
        index.upsert([VectorRecord(f"img-{i:05d}", unit(100 * round_ + i)) for i in range(8)])
    files = {p.name: p.stat().st_size for p in (tmp_path / "index").glob("*.f32")}
    assert list(files) == ["ns-0-1.f32"] and files["ns-0-1.f32"] < 32 * DIM * 4  # 32 written
    assert index.count() == 8
    assert [m.id for m in index.query(unit(203), top_k=1)] == ["img-00003"]
    index.close()
