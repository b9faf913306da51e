"""The catalog of the embedded home: one SQLite file in WAL mode.

WAL lets any number of readers run while one writer commits, across threads and processes (the
API server and the folder watcher share the file). Each thread gets its own connection; writes
that read first (``put_if_newer``, ``update_status``) run in ``BEGIN IMMEDIATE`` so two writers
serialise instead of deadlocking. ``synchronous=NORMAL`` in WAL mode keeps every committed
transaction across a ``kill -9`` of the process (the WAL is in the OS page cache); only a power
loss can drop the last commits, and never corrupts the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fashion_search.errors import NotFound, StaleEvent, StoreError, TransientStoreError
from fashion_search.ingest.documents import lexical_text
from fashion_search.lexical import LexicalStats, tokenize
from fashion_search.stores.catalog import (
    MAX_TAG_VALUES_PER_FIELD,
    Catalog,
    StatusChange,
    decode_embedding,
    encode_embedding,
)
from fashion_search.stores.disk import disk_full, is_disk_full
from fashion_search.types import CatalogItem, ItemStatus, now

SCHEMA_VERSION = 5
_BUSY_TIMEOUT_MS = 10_000
_CHUNK = 500  # ids per IN (...) query, below SQLite's bound-parameter limit
_WORDS_VERSION = "words_version"  # catalog_meta row: bumped by every write of an item's words
_STATS_CACHE_TOKENS = 50_000  # cached document frequencies, at most (then read afresh)

# Migrations from version N-1 to N. A new database runs them all; an older one runs the rest.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE items (
            image_id TEXT PRIMARY KEY, key TEXT NOT NULL, bucket TEXT, status TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '{}', tags_predicted INTEGER NOT NULL DEFAULT 0,
            display_name TEXT, content_hash TEXT, etag TEXT, version_id TEXT,
            ordering_token TEXT NOT NULL DEFAULT '', model_id TEXT, reason TEXT,
            created_at REAL NOT NULL, updated_at REAL NOT NULL)""",
        "CREATE INDEX items_by_status ON items (status, updated_at)",
        "CREATE INDEX items_by_hash ON items (content_hash) WHERE content_hash IS NOT NULL",
        """CREATE TABLE tag_values (field TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (field, value)) WITHOUT ROWID""",
    ),
    # Issue #9: items keep their embedding so an index can be rebuilt without the model.
    2: (
        "ALTER TABLE items ADD COLUMN embedding BLOB",
        "ALTER TABLE items ADD COLUMN embedding_dim INTEGER",
    ),
    # Issue #16: product documents (the display name's text vector) and lexical search. The
    # FTS5 table holds each live item's words, already normalised by ``lexical.tokenize`` (so
    # FTS5's own tokenizer only splits on spaces); ``items_vocab`` gives document frequencies.
    3: (
        "ALTER TABLE items ADD COLUMN text_embedding BLOB",
        "CREATE VIRTUAL TABLE items_text USING fts5(image_id UNINDEXED, body)",
        "CREATE VIRTUAL TABLE items_vocab USING fts5vocab(items_text, row)",
    ),
    # Issue #16, latency: each item's words beside it too, so a hybrid query reads the dense
    # candidates' words by key (FTS5 finds rows by word, not by its unindexed image_id: that
    # read scanned the whole table). ``catalog_meta.words_version`` counts word changes; it
    # keys the cached document frequencies (``lexical_stats``).
    4: ("ALTER TABLE items ADD COLUMN words TEXT",),
    # Each item's FTS5 rowid beside it: rewriting or deleting an item's words then finds its
    # FTS5 row by key (a DELETE by the unindexed image_id scanned the whole table on every
    # write: 15 ms a write at 44k items). FTS5 keeps its rowids through VACUUM (its content
    # table's id is an INTEGER PRIMARY KEY); ``items``' own rowid would not be kept.
    5: ("ALTER TABLE items ADD COLUMN words_rowid INTEGER",),
}
_COLUMNS = (
    "image_id key bucket status tags tags_predicted display_name content_hash etag version_id "
    "ordering_token model_id reason created_at updated_at embedding embedding_dim text_embedding"
).split()
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM items"


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already: on SQLITE_FULL (and some I/O
    errors) it rolls back by itself, and a second ROLLBACK ("cannot rollback - no transaction is
    active") would hide the error that matters."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the caller re-raises the original error
            conn.execute("ROLLBACK")


class SqliteCatalog(Catalog):
    """``Catalog`` port over one SQLite file (created, or migrated to ``SCHEMA_VERSION``)."""

    max_get_many = _CHUNK  # one IN (...) query per batch

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._stats: _CachedStats | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate(self._conn())

    # -- connections and schema -------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        # A connection must not cross fork(): a child process opens its own.
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            try:
                conn = sqlite3.connect(
                    self.path,
                    timeout=_BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.DatabaseError as exc:
                if is_disk_full(exc):
                    raise disk_full(self.path, exc) from exc
                raise StoreError(f"cannot open catalog {self.path}: {exc}") from exc
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._all.append(conn)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"catalog {self.path} has schema version {version}, newer than the "
                        f"{SCHEMA_VERSION} this fashion-search reads: upgrade fashion-search"
                    )
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[step]:
                        conn.execute(statement)
                if version < 5:  # existing items' words, once, in both places, linked
                    conn.execute("DELETE FROM items_text")
                    for row in conn.execute(_SELECT).fetchall():
                        _store_words(conn, _item(row), fts_rowid=None)
                conn.execute(
                    "INSERT OR REPLACE INTO catalog_meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.DatabaseError as exc:
            if is_disk_full(exc):
                raise disk_full(self.path, exc) from exc
            raise StoreError(f"catalog {self.path} is not a usable catalog: {exc}") from exc

    def _version(self, conn: sqlite3.Connection) -> int:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "catalog_meta" not in tables:
            if tables:
                raise StoreError(
                    f"{self.path} is an SQLite file but not a fashion-search catalog "
                    f"(tables: {', '.join(sorted(tables))})"
                )
            conn.execute("CREATE TABLE catalog_meta (name TEXT PRIMARY KEY, value TEXT)")
            return 0
        row = conn.execute(
            "SELECT value FROM catalog_meta WHERE name = 'schema_version'"
        ).fetchone()
        if row is None or not str(row[0]).isdigit():
            raise StoreError(f"catalog {self.path} has no readable schema version")
        return int(row[0])

    def schema_version(self) -> int:
        row = (
            self._conn()
            .execute("SELECT value FROM catalog_meta WHERE name = 'schema_version'")
            .fetchone()
        )
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if is_disk_full(exc):
                raise disk_full(self.path, exc) from exc
            raise TransientStoreError(f"catalog read failed: {exc}") from exc

    def _write(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one immediate transaction."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args)
                conn.execute("COMMIT")  # can fail too (a full disk): roll back then as well
            except BaseException:
                _rollback(conn)
                raise
            return result
        except sqlite3.OperationalError as exc:  # "database is locked" past the busy timeout
            if is_disk_full(exc):
                raise disk_full(self.path, exc) from exc
            raise TransientStoreError(f"catalog write failed: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"catalog write failed: {exc}") from exc

    # -- writes -----------------------------------------------------------------------------

    def put(self, item: CatalogItem) -> None:
        self._write(_store, item)

    def put_if_newer(self, item: CatalogItem) -> CatalogItem:
        result: CatalogItem = self._write(self._put_if_newer, item)
        return result

    def _put_if_newer(self, conn: sqlite3.Connection, item: CatalogItem) -> CatalogItem:
        row = conn.execute(f"{_SELECT} WHERE image_id = ?", (item.image_id,)).fetchone()
        stored = _item(row) if row else None
        if stored is not None:
            refuse_tie = item.status is not ItemStatus.DELETED
            if stored.ordering_token > item.ordering_token or (
                stored.ordering_token == item.ordering_token
                and stored.status is ItemStatus.DELETED
                and refuse_tie
            ):
                raise StaleEvent(
                    f"item {item.image_id!r} holds token {stored.ordering_token!r} "
                    f"({stored.status}); refusing {item.ordering_token!r} ({item.status})"
                )
        merged = _merge(stored, item)
        _store(conn, merged)
        return merged

    def _update_status(self, change: StatusChange) -> None:
        image_id, expected_token = change.image_id, change.expected_token

        def update(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT ordering_token FROM items WHERE image_id = ?", (image_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no catalog item {image_id!r}")
            if expected_token is not None and row[0] != expected_token:
                raise StaleEvent(
                    f"item {image_id!r} now holds token {row[0]!r}, not {expected_token!r}"
                )
            conn.execute(
                "UPDATE items SET status = ?, reason = ?, model_id = coalesce(?, model_id), "
                "updated_at = ? WHERE image_id = ?",
                (change.status.value, change.reason, change.model_id, now(), image_id),
            )

        self._write(update)

    def delete(self, image_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            _drop_words(conn, _fts_rowid(conn, image_id))
            conn.execute("DELETE FROM items WHERE image_id = ?", (image_id,))

        self._write(delete)

    # -- reads ------------------------------------------------------------------------------

    def get(self, image_id: str) -> CatalogItem | None:
        rows = self._query(f"{_SELECT} WHERE image_id = ?", (image_id,))
        return _item(rows[0]) if rows else None

    def _get_many(self, image_ids: Sequence[str]) -> dict[str, CatalogItem]:
        marks = ",".join("?" * len(image_ids))
        rows = self._query(f"{_SELECT} WHERE image_id IN ({marks})", image_ids)
        return {row[0]: _item(row) for row in rows}

    def find_by_hash(self, content_hash: str) -> list[CatalogItem]:
        rows = self._query(f"{_SELECT} WHERE content_hash = ? ORDER BY image_id", (content_hash,))
        return [_item(r) for r in rows]

    def _by_status(self, status: ItemStatus) -> Iterator[CatalogItem]:
        """Oldest update first, in pages, so a long reconcile does not hold a read snapshot."""
        after: tuple[float, str] = (float("-inf"), "")
        while True:
            rows = self._query(
                f"{_SELECT} WHERE status = ? AND (updated_at, image_id) > (?, ?) "
                "ORDER BY updated_at, image_id LIMIT ?",
                (status.value, after[0], after[1], _CHUNK),
            )
            yield from (_item(r) for r in rows)
            if len(rows) < _CHUNK:
                return
            after = (rows[-1][14], rows[-1][0])

    def _count(self, status: ItemStatus | None) -> int:
        if status is None:
            return int(self._query("SELECT count(*) FROM items")[0][0])
        sql = "SELECT count(*) FROM items WHERE status = ?"
        return int(self._query(sql, (status.value,))[0][0])

    def lexical_matches(
        self, tokens: Sequence[str], *, limit: int, also: Sequence[str] = ()
    ) -> list[tuple[str, list[str]]]:
        """INDEXED items holding any of ``tokens`` (FTS5's own BM25 order, best ``limit``), each
        with its words, for ``lexical.lexical_score`` to score exactly as Pinecone would; then
        the words of the items in ``also`` (the dense side's candidates), in the same read."""
        words = [t for t in dict.fromkeys(tokens) if t.isalnum()]
        extra = list(dict.fromkeys(also))[:_CHUNK]
        parts, params = [], []
        if words:
            parts.append(
                "SELECT * FROM (SELECT f.image_id, f.body FROM items_text f JOIN items i "
                "ON i.image_id = f.image_id WHERE items_text MATCH ? AND i.status = 'INDEXED' "
                "ORDER BY f.rank LIMIT ?)"
            )
            params += [" OR ".join(f'"{t}"' for t in words), limit]
        if extra:
            marks = ",".join("?" * len(extra))
            parts.append(
                f"SELECT image_id, words FROM items WHERE image_id IN ({marks}) AND words != ''"
            )
            params += extra
        if not parts:
            return []
        rows = self._query(" UNION ALL ".join(parts), params)
        return [(image_id, body.split()) for image_id, body in rows]

    def lexical_terms(self, image_ids: Sequence[str]) -> dict[str, list[str]]:
        """The stored words of these items (those that have any)."""
        ids = list(dict.fromkeys(image_ids))
        out: dict[str, list[str]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT image_id, words FROM items WHERE image_id IN ({marks}) AND words != ''"
            out.update((image_id, body.split()) for image_id, body in self._query(sql, chunk))
        return out

    def lexical_stats(self, tokens: Sequence[str]) -> LexicalStats:
        """Document frequencies of ``tokens`` over the catalog's live items. Cached until the
        catalog's words change (``words_version``, bumped in the same transaction as every
        write of words, by any process): a query then costs one tiny read instead of a count
        over the whole FTS5 table."""
        words = list(dict.fromkeys(tokens))[:_CHUNK]
        cached = self._stats
        if cached is not None and all(w in cached.df for w in words):
            rows = self._query(f"SELECT value FROM catalog_meta WHERE name = '{_WORDS_VERSION}'")
            if (rows[0][0] if rows else None) == cached.version:
                return cached.stats(words)
        # One statement, so the version, the count and the frequencies are one snapshot.
        sql = (
            f"SELECT 0, (SELECT value FROM catalog_meta WHERE name = '{_WORDS_VERSION}'), "
            "count(*) FROM items_text"
        )
        if words:
            marks = ",".join("?" * len(words))
            sql += f" UNION ALL SELECT 1, term, doc FROM items_vocab WHERE term IN ({marks})"
        rows = self._query(sql, words)
        head = next(r for r in rows if r[0] == 0)
        df = dict.fromkeys(words, 0) | {term: int(doc) for kind, term, doc in rows if kind == 1}
        if cached is None or cached.version != head[1] or len(cached.df) > _STATS_CACHE_TOKENS:
            cached = _CachedStats(version=head[1], n_docs=int(head[2]), df={})
            self._stats = cached
        cached.df.update(df)
        return cached.stats(words)

    def tag_values(self) -> dict[str, list[str]]:
        """Every value ever written for each field (kept when items go, like the DynamoDB
        aggregate: a stale value in a filter menu just matches nothing)."""
        values: dict[str, list[str]] = {}
        for field, value in self._query("SELECT field, value FROM tag_values ORDER BY 1, 2"):
            values.setdefault(field, []).append(value)
        return values


def _merge(stored: CatalogItem | None, item: CatalogItem) -> CatalogItem:
    """``item``, keeping the loader's tags/display name when it has none, and the creation time."""
    if stored is None:
        return item
    keep_tags = not item.tags
    return dataclasses.replace(
        item,
        tags=dict(stored.tags) if keep_tags else dict(item.tags),
        tags_predicted=stored.tags_predicted if keep_tags else item.tags_predicted,
        display_name=item.display_name or stored.display_name,
        created_at=stored.created_at,
    )


def _store(conn: sqlite3.Connection, item: CatalogItem) -> None:
    blob, dim = encode_embedding(item.embedding) if item.embedding is not None else (None, None)
    text_blob = _text_blob(item, dim)
    row = (
        item.image_id, item.key, item.bucket, ItemStatus(item.status).value,
        json.dumps(item.tags, sort_keys=True), int(item.tags_predicted), item.display_name,
        item.content_hash, item.etag, item.version_id, item.ordering_token, item.model_id,
        item.reason, item.created_at, item.updated_at, blob, dim, text_blob,
    )  # fmt: skip
    marks = ",".join("?" * len(_COLUMNS))
    fts_rowid = _fts_rowid(conn, item.image_id)  # read before REPLACE drops the old row
    conn.execute(f"INSERT OR REPLACE INTO items ({', '.join(_COLUMNS)}) VALUES ({marks})", row)
    for field, value in item.tags.items():
        conn.execute(
            "INSERT OR IGNORE INTO tag_values SELECT ?, ? "
            "WHERE (SELECT count(*) FROM tag_values WHERE field = ?) < ?",
            (field, str(value), field, MAX_TAG_VALUES_PER_FIELD),
        )
    _store_words(conn, item, fts_rowid=fts_rowid)


def _text_blob(item: CatalogItem, dim: int | None) -> bytes | None:
    """The text vector's bytes; it shares the image embedding's dimension (one model made
    both), so only stored beside an image embedding of the same size."""
    if item.text_embedding is None or dim is None:
        return None
    blob, text_dim = encode_embedding(item.text_embedding)
    return blob if text_dim == dim else None


def _fts_rowid(conn: sqlite3.Connection, image_id: str) -> int | None:
    row = conn.execute("SELECT words_rowid FROM items WHERE image_id = ?", (image_id,)).fetchone()
    return None if row is None else row[0]


def _drop_words(conn: sqlite3.Connection, fts_rowid: int | None) -> None:
    if fts_rowid is not None:
        conn.execute("DELETE FROM items_text WHERE rowid = ?", (fts_rowid,))
    _bump_words_version(conn)


def _store_words(conn: sqlite3.Connection, item: CatalogItem, *, fts_rowid: int | None) -> None:
    """Keep the item's words (its ``words`` column and its FTS5 row, whose rowid the item keeps
    in ``words_rowid``): none once it is deleted. ``fts_rowid``: the item's FTS5 row until now
    (``None``: it has none, e.g. a migration refilling the table)."""
    _drop_words(conn, fts_rowid)
    body = "" if item.status is ItemStatus.DELETED else " ".join(tokenize(lexical_text(item)))
    new_rowid = None
    if body:
        cur = conn.execute(
            "INSERT INTO items_text (image_id, body) VALUES (?, ?)", (item.image_id, body)
        )
        new_rowid = cur.lastrowid
    conn.execute(
        "UPDATE items SET words = ?, words_rowid = ? WHERE image_id = ?",
        (body, new_rowid, item.image_id),
    )


def _bump_words_version(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"INSERT INTO catalog_meta VALUES ('{_WORDS_VERSION}', '1') "
        "ON CONFLICT (name) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )


@dataclasses.dataclass(slots=True)
class _CachedStats:
    """Document frequencies read at one ``words_version`` (0 for a token no item has)."""

    version: Any
    n_docs: int
    df: dict[str, int]

    def stats(self, words: Sequence[str]) -> LexicalStats:
        return LexicalStats(n_docs=self.n_docs, df={w: self.df[w] for w in words if self.df[w]})


def _item(row: tuple[Any, ...]) -> CatalogItem:
    r = dict(zip(_COLUMNS, row, strict=True))
    try:
        status = ItemStatus(r["status"])
    except ValueError as exc:
        raise StoreError(f"item {r['image_id']!r} has unknown status {r['status']!r}") from exc
    blob, dim = r.pop("embedding"), r.pop("embedding_dim")
    text_blob = r.pop("text_embedding")
    r.update(
        status=status,
        tags=json.loads(r["tags"]),
        tags_predicted=bool(r["tags_predicted"]),
        embedding=decode_embedding(blob, dim) if blob is not None else None,
        text_embedding=decode_embedding(text_blob, dim) if text_blob is not None else None,
    )
    return CatalogItem(**r)
