"""One contract for the catalog port, run against SQLite (for real) and DynamoDB (under moto)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from fashion_search.errors import (
    InvalidInput,
    NotFound,
    StaleEvent,
    StoreError,
    TransientStoreError,
)
from fashion_search.stores.aws.dynamodb_catalog import DynamoDBCatalog, create_catalog_table
from fashion_search.stores.catalog import Catalog
from fashion_search.stores.embedded.sqlite_catalog import SCHEMA_VERSION, SqliteCatalog
from fashion_search.types import CatalogItem, ItemStatus

DELETED, FAILED, INDEXED, PENDING = (
    ItemStatus.DELETED,
    ItemStatus.FAILED,
    ItemStatus.INDEXED,
    ItemStatus.PENDING,
)


@pytest.fixture(params=["sqlite", "dynamodb"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        sqlite = SqliteCatalog(tmp_path / "catalog.sqlite")
        yield sqlite
        sqlite.close()
    else:
        table = request.getfixturevalue("dynamodb_catalog_table")
        yield DynamoDBCatalog(table, client=request.getfixturevalue("dynamodb_client"))


def item(image_id: str = "15970", **fields: Any) -> CatalogItem:
    fields.setdefault("key", f"images/{image_id}.jpg")
    return CatalogItem(image_id=image_id, **fields)


def fields_of(it: CatalogItem) -> dict[str, Any]:
    """Comparable fields (the embedding as its exact bytes)."""
    out = {name: getattr(it, name) for name in CatalogItem.__slots__}
    for name in ("embedding", "text_embedding"):
        emb = out.pop(name)
        out[name] = None if emb is None else (emb.dtype.str, emb.tobytes())
    return out


def test_round_trip_keeps_every_field_and_the_embedding_bit_exact(catalog: Catalog) -> None:
    rng = np.random.default_rng(7)
    vector = rng.standard_normal(512).astype(np.float32)
    vector[:4] = np.array([-0.0, 1e-45, np.finfo(np.float32).max, 1 / 3], dtype=np.float32)
    original = item(
        "tops/red flower é",
        key="images/tops/red flower é.jpg",
        status=INDEXED,
        bucket="bkt",
        tags={"gender": "Men", "year": "2012", "articleType": "Shirts"},
        tags_predicted=True,
        display_name="Turtle Check Men Navy Blue Shirt",
        content_hash="ab" * 32,
        etag="d41d8cd98f00b204e9800998ecf8427e",
        version_id="v1",
        ordering_token="0001",
        model_id="ViT-B-32__openai",
        embedding=vector,
        text_embedding=vector[::-1].copy(),  # the display name's vector (product documents)
        reason=None,
        created_at=1700000000.25,
        updated_at=1700000001.5,
    )
    catalog.put(original)
    stored = catalog.get("tops/red flower é")
    assert stored is not None
    assert fields_of(stored) == fields_of(original)
    assert stored.embedding is not None and stored.embedding.dtype == np.float32
    assert catalog.get("missing") is None


def test_newer_event_wins_and_older_is_refused(catalog: Catalog) -> None:
    catalog.put_if_newer(item(ordering_token="0005", etag="e5"))
    with pytest.raises(StaleEvent):
        catalog.put_if_newer(item(ordering_token="0004", etag="e4"))
    assert catalog.get("15970").etag == "e5"  # type: ignore[union-attr]
    stored = catalog.put_if_newer(item(ordering_token="0006", etag="e6"))
    assert (stored.etag, stored.ordering_token) == ("e6", "0006")
    assert catalog.get("15970").etag == "e6"  # type: ignore[union-attr]


def test_same_event_twice_is_idempotent(catalog: Catalog) -> None:
    first = catalog.put_if_newer(item(ordering_token="0007", etag="e"))
    again = catalog.put_if_newer(item(ordering_token="0007", etag="e"))
    assert (again.etag, again.ordering_token, again.created_at) == ("e", "0007", first.created_at)
    assert catalog.count() == 1


def test_tombstone_refuses_a_late_create_with_the_same_or_older_token(catalog: Catalog) -> None:
    catalog.put_if_newer(item(ordering_token="0003", status=PENDING))
    catalog.put_if_newer(item(ordering_token="0009", status=DELETED))
    for token in ("0009", "0008"):
        with pytest.raises(StaleEvent):
            catalog.put_if_newer(item(ordering_token=token, status=PENDING))
    assert catalog.get("15970").status is DELETED  # type: ignore[union-attr]
    catalog.put_if_newer(item(ordering_token="0009", status=DELETED))  # replayed delete: fine
    revived = catalog.put_if_newer(item(ordering_token="0010", status=PENDING))  # re-upload
    assert revived.status is PENDING


def test_event_without_tags_keeps_the_loaders_tags_and_name(catalog: Catalog) -> None:
    catalog.put(item(tags={"gender": "Women"}, display_name="Red Kurta", tags_predicted=False))
    stored = catalog.put_if_newer(item(ordering_token="0002", etag="x", tags_predicted=True))
    assert (stored.tags, stored.display_name, stored.tags_predicted) == (
        {"gender": "Women"},
        "Red Kurta",
        False,
    )
    assert catalog.get("15970").tags == {"gender": "Women"}  # type: ignore[union-attr]
    tagged = catalog.put_if_newer(item(ordering_token="0003", tags={"gender": "Men"}))
    assert tagged.tags == {"gender": "Men"} and tagged.display_name == "Red Kurta"


def test_event_without_embedding_drops_the_old_one(catalog: Catalog) -> None:
    vector = np.arange(8, dtype=np.float32)
    catalog.put_if_newer(item(ordering_token="1", embedding=vector, model_id="m1", reason="r"))
    stored = catalog.put_if_newer(item(ordering_token="2"))
    assert (stored.embedding, stored.model_id, stored.reason) == (None, None, None)
    assert catalog.get("15970").embedding is None  # type: ignore[union-attr]


def test_update_status_checks_the_expected_token(catalog: Catalog) -> None:
    catalog.put_if_newer(item(ordering_token="0004"))
    catalog.update_status("15970", FAILED, reason="not an image", expected_token="0004")
    stored = catalog.get("15970")
    assert stored is not None and (stored.status, stored.reason) == (FAILED, "not an image")
    with pytest.raises(StaleEvent):
        catalog.update_status("15970", INDEXED, model_id="m", expected_token="0003")
    assert catalog.get("15970").status is FAILED  # type: ignore[union-attr]
    catalog.update_status("15970", INDEXED, model_id="m")
    stored = catalog.get("15970")
    assert stored is not None and (stored.status, stored.reason, stored.model_id) == (
        INDEXED,
        None,
        "m",
    )
    with pytest.raises(NotFound):
        catalog.update_status("nope", INDEXED)
    assert catalog.get("nope") is None


def test_get_many_over_a_hundred_ids_with_duplicates_and_missing(catalog: Catalog) -> None:
    for i in range(130):
        catalog.put(item(f"id{i:03d}", display_name=f"n{i}"))
    wanted = [f"id{i:03d}" for i in range(0, 130, 1)] + ["id005", "absent"]
    found = catalog.get_many(wanted)
    assert sorted(found) == [f"id{i:03d}" for i in range(130)]
    assert found["id101"].display_name == "n101"
    assert catalog.get_many([]) == {}


def test_an_unknown_status_is_the_same_named_error_everywhere(catalog: Catalog) -> None:
    catalog.put(item("a"))
    calls = [
        lambda: catalog.update_status("a", "SHIPPED"),  # type: ignore[arg-type]
        lambda: catalog.by_status("SHIPPED"),  # type: ignore[arg-type]
        lambda: catalog.count("SHIPPED"),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidInput, match="SHIPPED") as caught:
            call()
        assert caught.value.field == "status"
    assert catalog.get("a").status is PENDING  # type: ignore[union-attr]


def test_by_status_and_count(catalog: Catalog) -> None:
    for i, status in enumerate([PENDING, INDEXED, INDEXED, FAILED, DELETED, INDEXED]):
        catalog.put(item(f"i{i}", status=status, updated_at=1000.0 - i))
    indexed = [it.image_id for it in catalog.by_status(INDEXED)]
    assert indexed == ["i5", "i2", "i1"]  # oldest update first
    assert [it.image_id for it in catalog.by_status(PENDING)] == ["i0"]
    assert (catalog.count(), catalog.count(INDEXED), catalog.count(DELETED)) == (6, 3, 1)
    catalog.update_status("i0", INDEXED)
    assert catalog.count(PENDING) == 0 and list(catalog.by_status(PENDING)) == []


def test_find_by_hash(catalog: Catalog) -> None:
    catalog.put(item("b", content_hash="h1"))
    catalog.put(item("a", content_hash="h1"))
    catalog.put(item("c", content_hash="h2"))
    catalog.put(item("d"))
    assert [it.image_id for it in catalog.find_by_hash("h1")] == ["a", "b"]
    assert catalog.find_by_hash("none") == []


def test_tag_values(catalog: Catalog) -> None:
    catalog.put(item("1", tags={"gender": "Men", "baseColour": "Navy Blue", "year": "2012"}))
    catalog.put_if_newer(item("2", ordering_token="1", tags={"gender": "Women", "year": "2011"}))
    catalog.put(item("3", tags={"gender": "Men", "fabric": "Silk"}))
    assert catalog.tag_values() == {
        "baseColour": ["Navy Blue"],
        "fabric": ["Silk"],
        "gender": ["Men", "Women"],
        "year": ["2011", "2012"],
    }


def test_tag_values_stop_recording_a_free_text_field(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("embedded.sqlite_catalog", "aws.dynamodb_catalog"):
        monkeypatch.setattr(f"fashion_search.stores.{module}.MAX_TAG_VALUES_PER_FIELD", 3)
    for i in range(5):
        catalog.put(item(f"{i}", tags={"sku": f"s{i}", "gender": "Men"}))
    assert catalog.tag_values() == {"gender": ["Men"], "sku": ["s0", "s1", "s2"]}


def test_delete_removes_the_row(catalog: Catalog) -> None:
    catalog.put(item("x", content_hash="h", status=INDEXED))
    catalog.delete("x")
    catalog.delete("x")  # no-op
    assert catalog.get("x") is None and catalog.count() == 0
    assert catalog.find_by_hash("h") == [] and list(catalog.by_status(INDEXED)) == []


# -- SQLite only: schema versions, kill -9, concurrent readers and writers -------------------

# The v1 schema as it shipped (before embeddings), frozen here so the migration stays tested.
_V1 = """
CREATE TABLE catalog_meta (name TEXT PRIMARY KEY, value TEXT);
INSERT INTO catalog_meta VALUES ('schema_version', '1');
CREATE TABLE items (
    image_id TEXT PRIMARY KEY, key TEXT NOT NULL, bucket TEXT, status TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}', tags_predicted INTEGER NOT NULL DEFAULT 0,
    display_name TEXT, content_hash TEXT, etag TEXT, version_id TEXT,
    ordering_token TEXT NOT NULL DEFAULT '', model_id TEXT, reason TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX items_by_status ON items (status, updated_at);
CREATE INDEX items_by_hash ON items (content_hash) WHERE content_hash IS NOT NULL;
CREATE TABLE tag_values (field TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (field, value)) WITHOUT ROWID;
INSERT INTO items (image_id, key, status, tags, model_id, created_at, updated_at)
    VALUES ('old', 'images/old.jpg', 'INDEXED', '{"gender": "Men"}', 'm0', 1.0, 2.0);
"""


def _sqlite_file(path: Path, script: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()
    return path


def test_sqlite_migrates_a_v1_catalog_in_place(tmp_path: Path) -> None:
    cat = SqliteCatalog(_sqlite_file(tmp_path / "c.sqlite", _V1))
    assert cat.schema_version() == SCHEMA_VERSION
    old = cat.get("old")
    assert old is not None and (old.status, old.tags, old.embedding) == (
        INDEXED,
        {"gender": "Men"},
        None,
    )
    cat.put_if_newer(item("old", ordering_token="1", embedding=np.ones(4, np.float32)))
    cat.close()
    reopened = SqliteCatalog(tmp_path / "c.sqlite")
    assert reopened.get("old").embedding.tolist() == [1.0] * 4  # type: ignore[union-attr]
    reopened.close()


def test_sqlite_migration_indexes_the_words_of_existing_items(tmp_path: Path) -> None:
    cat = SqliteCatalog(_sqlite_file(tmp_path / "c.sqlite", _V1))
    assert cat.lexical_matches(["men"], limit=5) == [("old", ["men"])]  # its tag, backfilled
    assert cat.lexical_matches([], limit=5, also=["old"]) == [("old", ["men"])]  # by key too
    assert cat.lexical_stats(["men", "puma"]).df == {"men": 1}
    cat.close()


def test_sqlite_migration_from_v3_keeps_each_items_words_once(tmp_path: Path) -> None:
    """A v3 catalog (words in FTS5 only) gains the words column; its FTS5 rows are rebuilt,
    not doubled (a doubled row would count the item twice in the document frequencies)."""
    cat = SqliteCatalog(tmp_path / "c.sqlite")
    cat.put(item("a", status=INDEXED, display_name="Puma Men Blue Tshirt"))
    cat.put(item("b", status=INDEXED, display_name="Nike Women Shoes"))
    cat.close()
    conn = sqlite3.connect(tmp_path / "c.sqlite")
    conn.executescript(
        "ALTER TABLE items DROP COLUMN words_rowid;"
        "ALTER TABLE items DROP COLUMN words;"
        "DELETE FROM catalog_meta WHERE name = 'words_version';"
        "UPDATE catalog_meta SET value = '3' WHERE name = 'schema_version';"
    )
    conn.close()
    cat = SqliteCatalog(tmp_path / "c.sqlite")
    assert cat.schema_version() == SCHEMA_VERSION == 5
    stats = cat.lexical_stats(["puma", "shoe"])
    assert (stats.n_docs, stats.df) == (2, {"puma": 1, "shoe": 1})
    assert cat.lexical_matches(["puma"], limit=5, also=["b"]) == [
        ("a", ["puma", "men", "blue", "tshirt"]),
        ("b", ["nike", "women", "shoe"]),
    ]
    cat.close()


def _fts_rows(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT image_id, body FROM items_text").fetchall())
    finally:
        conn.close()


def test_sqlite_rewrites_and_deletes_keep_one_fts_row_per_item_even_after_vacuum(
    tmp_path: Path,
) -> None:
    """Each item finds its own FTS5 row by key when its words change or it goes (a v4 catalog
    gains the link on open); VACUUM, which may renumber ``items``' rowids, breaks nothing."""
    path = tmp_path / "c.sqlite"
    cat = SqliteCatalog(path)
    for name in ("a", "b", "c"):
        cat.put(item(name, status=INDEXED, display_name=f"Puma {name} Cap"))
    cat.close()
    conn = sqlite3.connect(path)
    conn.executescript(  # back to v4: no link from an item to its FTS5 row
        "ALTER TABLE items DROP COLUMN words_rowid;"
        "UPDATE catalog_meta SET value = '4' WHERE name = 'schema_version';"
    )
    conn.close()
    cat = SqliteCatalog(path)
    cat.delete("a")
    cat.close()
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")
    conn.close()
    cat = SqliteCatalog(path)
    cat.put(item("b", status=INDEXED, display_name="Nike Shoes"))
    cat.put_if_newer(item("c", status=DELETED, ordering_token="9"))
    cat.put(item("d", status=INDEXED, display_name="Puma Bag"))
    assert _fts_rows(path) == [("b", "nike shoe"), ("d", "puma bag")]
    stats = cat.lexical_stats(["puma", "nike"])
    assert (stats.n_docs, stats.df) == (2, {"puma": 1, "nike": 1})
    assert cat.lexical_matches(["puma"], limit=5) == [("d", ["puma", "bag"])]
    cat.close()


def test_sqlite_word_statistics_follow_every_writer(tmp_path: Path) -> None:
    """Document frequencies are cached per reader; a write by this catalog or by another
    process's (here: another connection to the same file) shows in the next read."""
    reader = SqliteCatalog(tmp_path / "c.sqlite")
    reader.put(item("a", status=INDEXED, display_name="Puma Men Blue Tshirt"))
    assert reader.lexical_stats(["puma", "zyxo"]).df == {"puma": 1}  # now cached
    writer = SqliteCatalog(tmp_path / "c.sqlite")
    writer.put(item("b", status=INDEXED, display_name="Puma Zyxo Cap"))
    stats = reader.lexical_stats(["puma", "zyxo"])
    assert (stats.n_docs, stats.df) == (2, {"puma": 2, "zyxo": 1})
    writer.delete("a")
    stats = reader.lexical_stats(["puma", "zyxo"])
    assert (stats.n_docs, stats.df) == (1, {"puma": 1, "zyxo": 1})
    reader.put_if_newer(item("b", status=DELETED, ordering_token="9"))
    assert reader.lexical_stats(["puma"]).n_docs == 0 and reader.lexical_stats(["puma"]).df == {}
    writer.close()
    reader.close()


def test_sqlite_finds_items_by_their_words_until_they_go(tmp_path: Path) -> None:
    cat = SqliteCatalog(tmp_path / "c.sqlite")
    cat.put(item("a", status=INDEXED, display_name="Puma Men Blue Tshirt", tags={"year": "2012"}))
    cat.put(item("b", status=INDEXED, display_name="Nike Women Shoes"))
    cat.put(item("c", status=ItemStatus.PENDING, display_name="Puma Cap"))  # not served yet
    assert cat.lexical_matches(["puma"], limit=5) == [("a", ["puma", "men", "blue", "tshirt"])]
    stats = cat.lexical_stats(["puma", "2012", "shoe"])
    assert stats.n_docs == 3 and stats.df == {"puma": 2, "shoe": 1}  # years are no words
    cat.put_if_newer(item("a", status=ItemStatus.DELETED, ordering_token="9"))
    assert cat.lexical_matches(["puma"], limit=5) == []
    cat.delete("b")
    assert cat.lexical_matches(["shoe"], limit=5) == [] and cat.lexical_stats([]).n_docs == 1
    cat.close()


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (_V1.replace("'schema_version', '1'", "'schema_version', '99'"), "newer than"),
        ("CREATE TABLE photos (id TEXT);", "not a fashion-search catalog"),
        ("CREATE TABLE catalog_meta (name TEXT PRIMARY KEY, value TEXT);", "no readable schema"),
    ],
)
def test_sqlite_refuses_what_it_cannot_read(tmp_path: Path, script: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        SqliteCatalog(_sqlite_file(tmp_path / "c.sqlite", script))


def test_sqlite_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / "c.sqlite").write_bytes(b"PK\x03\x04 this is a zip, not a database" * 100)
    with pytest.raises(StoreError, match="c.sqlite"):
        SqliteCatalog(tmp_path / "c.sqlite")


_WRITER = """
import sys
from pathlib import Path
from fashion_search.stores.embedded.sqlite_catalog import SqliteCatalog
from fashion_search.types import CatalogItem
cat = SqliteCatalog(Path(sys.argv[1]))
name, count = sys.argv[2], int(sys.argv[3])
i = 0
while count < 0 or i < count:
    cat.put_if_newer(CatalogItem(image_id=f"{name}{i}", key=f"{name}{i}.jpg", ordering_token="1"))
    print(i, flush=True)
    i += 1
"""


def _writer(
    path: Path, name: str, count: int, *, stdout: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), name, str(count)], stdout=stdout, text=True
    )


def test_sqlite_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    proc = _writer(path, "k", -1)
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(40)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    cat = SqliteCatalog(path)
    assert set(cat.get_many([f"k{i}" for i in acked])) == {f"k{i}" for i in acked}
    assert cat._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cat.close()


def test_sqlite_readers_see_monotonic_state_while_processes_write(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cat = SqliteCatalog(path)
    writers = [_writer(path, name, 60, stdout=subprocess.DEVNULL) for name in ("a", "b")]
    seen = [0]
    while any(w.poll() is None for w in writers):
        now = cat.count()
        assert now >= seen[-1]  # committed rows never disappear; no torn reads, no errors
        seen.append(now)
    assert [w.wait() for w in writers] == [0, 0]
    assert cat.count() == 120
    cat.close()


def test_sqlite_concurrent_writers_on_one_item_keep_the_newest(tmp_path: Path) -> None:
    cat = SqliteCatalog(tmp_path / "c.sqlite")
    tokens = [f"{i:04d}" for i in range(200)]
    random.Random(3).shuffle(tokens)
    errors: list[BaseException] = []
    done = threading.Event()

    def write(part: list[str]) -> None:
        for token in part:
            try:
                cat.put_if_newer(item(ordering_token=token))
            except StaleEvent:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

    def read() -> None:
        last = ""
        while not done.is_set():
            got = cat.get("15970")
            token = got.ordering_token if got else ""
            if token < last:
                errors.append(AssertionError(f"token went back from {last} to {token}"))
            last = token

    writers = [threading.Thread(target=write, args=(tokens[i::4],)) for i in range(4)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    assert cat.get("15970").ordering_token == "0199"  # type: ignore[union-attr]
    cat.close()


# -- DynamoDB only: BatchGetItem retries, error translation, bootstrap -----------------------


class _Unprocessing:
    """A client that leaves keys unprocessed: ``times`` batch calls return half their keys."""

    def __init__(self, client: Any, table: str, times: int) -> None:
        self._client, self._table, self.times, self.calls = client, table, times, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.calls += 1
        keys = kwargs["RequestItems"][self._table]["Keys"]
        if self.calls > self.times:
            return self._client.batch_get_item(**kwargs)
        half = len(keys) // 2
        response: dict[str, Any] = {"Responses": {self._table: []}}
        if half:
            response = self._client.batch_get_item(
                RequestItems={self._table: {"Keys": keys[:half]}}
            )
        response["UnprocessedKeys"] = {self._table: {"Keys": keys[half:]}}
        return response


def test_dynamodb_get_many_of_250_ids_arrives_whole_in_three_batch_reads(
    dynamodb_client: Any, dynamodb_catalog_table: str
) -> None:
    """The port cuts a batch read to the 100 keys BatchGetItem takes (declared by the adapter)
    and asks for a repeated id once (BatchGetItem refuses a repeated key)."""
    writer = DynamoDBCatalog(dynamodb_catalog_table, client=dynamodb_client)
    for i in range(250):
        writer.put(item(f"x{i}"))
    counting = _Unprocessing(dynamodb_client, dynamodb_catalog_table, times=0)
    sizes: list[int] = []
    real_batch_get = counting.batch_get_item

    def batch_get_item(**kwargs: Any) -> Any:
        sizes.append(len(kwargs["RequestItems"][dynamodb_catalog_table]["Keys"]))
        return real_batch_get(**kwargs)

    counting.batch_get_item = batch_get_item  # type: ignore[method-assign]
    ids = [f"x{i}" for i in range(250)]
    found = DynamoDBCatalog(dynamodb_catalog_table, client=counting).get_many([*ids, *ids[:30]])
    assert sorted(found) == sorted(ids)
    assert sizes == [100, 100, 50]


def test_dynamodb_get_many_retries_unprocessed_keys(
    dynamodb_client: Any, dynamodb_catalog_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("fashion_search.stores.aws.dynamodb_catalog.time.sleep", sleeps.append)
    DynamoDBCatalog(dynamodb_catalog_table, client=dynamodb_client).put(item("a"))
    for i in range(150):
        DynamoDBCatalog(dynamodb_catalog_table, client=dynamodb_client).put(item(f"x{i}"))
    flaky = _Unprocessing(dynamodb_client, dynamodb_catalog_table, times=3)
    found = DynamoDBCatalog(dynamodb_catalog_table, client=flaky).get_many(
        [f"x{i}" for i in range(150)]
    )
    assert len(found) == 150 and sleeps == sorted(sleeps) and len(sleeps) >= 2
    stuck = _Unprocessing(dynamodb_client, dynamodb_catalog_table, times=10**6)
    with pytest.raises(TransientStoreError, match="unprocessed"):
        DynamoDBCatalog(dynamodb_catalog_table, client=stuck).get_many(["x1", "x2"])


class _Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Any:
        def fail(**_: Any) -> Any:
            raise self.exc

        return fail


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetItem"),
            TransientStoreError,
        ),
        (
            ClientError(
                {"Error": {"Code": "X"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetItem"
            ),
            TransientStoreError,
        ),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), TransientStoreError),
        (ClientError({"Error": {"Code": "AccessDeniedException"}}, "GetItem"), StoreError),
    ],
)
def test_dynamodb_errors_are_translated(exc: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught:
        DynamoDBCatalog("t", client=_Failing(exc)).get("a")
    assert caught.value.__cause__ is exc
    if expected is StoreError:
        assert not isinstance(caught.value, TransientStoreError)


def test_dynamodb_missing_table_is_a_store_error_and_bootstrap_is_idempotent(
    dynamodb_client: Any, dynamodb_catalog_table: str
) -> None:
    with pytest.raises(StoreError, match="absent-table"):
        DynamoDBCatalog("absent-table", client=dynamodb_client).get("a")
    create_catalog_table(dynamodb_client, dynamodb_catalog_table)  # second time: no error
    assert DynamoDBCatalog(dynamodb_catalog_table, client=dynamodb_client).count() == 0
