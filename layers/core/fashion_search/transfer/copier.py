"""One batch of a migration: catalog rows, then vectors, then blobs, each compare-and-skip.

Blobs go last on purpose: writing a blob under the AWS ingest prefix fires an S3 event, and by
then the target row is already INDEXED with its embedding, content hash and eTag, so the ingest
core reuses the stored embedding and never runs the model for a copied image.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from fashion_search.errors import InvalidInput
from fashion_search.ingest.documents import vector_record
from fashion_search.transfer.mapping import (
    SAME_VECTOR_COSINE,
    blob_metadata,
    cosine,
    md5_etag,
    same_blob,
    same_item,
    target_item,
    target_key,
)
from fashion_search.types import BlobInfo, CatalogItem, ItemStatus, VectorRecord

if TYPE_CHECKING:
    from fashion_search.home import Stores

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Tally:
    items_copied: Counter[str] = field(default_factory=Counter)  # per status
    items_present: int = 0
    vectors_copied: int = 0
    vectors_present: int = 0
    blobs_copied: int = 0
    blobs_present: int = 0
    # image id -> why it could not be copied whole (blob gone, no vector, refused key ...)
    problems: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Pair:
    source: CatalogItem
    target: CatalogItem
    blob: BlobInfo | None  # the source blob's head; None for tombstones and lost blobs


class Copier:
    def __init__(
        self,
        source: Stores,
        target: Stores,
        *,
        max_blob_bytes: int,
        workers: int,
        tally: Tally | None = None,
    ) -> None:
        self.source, self.target = source, target
        self.max_blob_bytes = max_blob_bytes
        self.workers = workers
        self.tally = tally if tally is not None else Tally()
        bucket = getattr(target.blobs, "bucket", None)
        self.bucket = bucket if isinstance(bucket, str) else None

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``fn`` over ``items`` on up to ``workers`` threads (blob stores do I/O per key)."""
        if len(items) <= 1 or self.workers == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))

    def batch(self, items: Sequence[CatalogItem]) -> None:
        pairs = self._pairs(items)
        self._catalog(pairs)
        self._vectors([p for p in pairs if p.target.status is ItemStatus.INDEXED])
        live = [p for p in pairs if p.blob is not None]
        for pair, outcome in zip(live, self._map(self._blob, live), strict=True):
            if outcome == "copied":
                self.tally.blobs_copied += 1
            elif outcome == "present":
                self.tally.blobs_present += 1
            else:
                self.tally.problems[pair.source.image_id] = outcome

    def _head(self, item: CatalogItem) -> BlobInfo | None:
        return None if item.status is ItemStatus.DELETED else self.source.blobs.head(item.key)

    def _pairs(self, items: Sequence[CatalogItem]) -> list[_Pair]:
        """Map each item to its target row. INDEXED items without a stored embedding (written
        before the catalog kept them) take the vector the source index holds."""
        lacking = [
            it.image_id for it in items if it.status is ItemStatus.INDEXED and it.embedding is None
        ]
        fetched = (
            self.source.vectors.fetch(lacking, namespace=self.source.namespace) if lacking else {}
        )
        heads = self._map(self._head, items)
        pairs: list[_Pair] = []
        for item, head in zip(items, heads, strict=True):
            record = fetched.get(item.image_id)
            key = target_key(
                item.key,
                source_prefix=self.source.ingest_prefix,
                target_prefix=self.target.ingest_prefix,
            )
            try:
                copy = target_item(
                    item,
                    key=key,
                    target_prefix=self.target.ingest_prefix,
                    bucket=self.bucket,
                    embedding=item.embedding if record is None else record.values,
                    etag=md5_etag(head),
                )
            except InvalidInput as exc:
                self.tally.problems[item.image_id] = exc.message
                continue
            if head is None and item.status is not ItemStatus.DELETED:
                self.tally.problems[item.image_id] = f"source blob {item.key!r} is missing"
            pairs.append(_Pair(item, copy, head))
        return pairs

    def _catalog(self, pairs: list[_Pair]) -> None:
        stored = self.target.catalog.get_many([p.target.image_id for p in pairs])
        for pair in pairs:
            have = stored.get(pair.target.image_id)
            if have is not None and same_item(have, pair.target):
                self.tally.items_present += 1
                continue
            self.target.catalog.put(pair.target)
            self.tally.items_copied[pair.target.status.value] += 1

    def _vectors(self, pairs: list[_Pair]) -> None:
        ns, dimension = self.target.namespace, self.target.vectors.dimension
        have = self.target.vectors.fetch([p.target.image_id for p in pairs], namespace=ns)
        todo: list[VectorRecord] = []
        for pair in pairs:
            item = pair.target
            if item.embedding is None:
                self.tally.problems[item.image_id] = "INDEXED without an embedding or a vector"
                continue
            if item.embedding.shape[0] != dimension:
                self.tally.problems[item.image_id] = (
                    f"vector not copied: its dimension {item.embedding.shape[0]} is not the "
                    f"target index's {dimension} (made by {item.model_id})"
                )
                continue
            record = vector_record(item)
            old = have.get(item.image_id)
            if (
                old is not None
                and old.metadata == record.metadata
                and cosine(old.values, record.values) > SAME_VECTOR_COSINE
            ):
                self.tally.vectors_present += 1
                continue
            todo.append(record)
        if not todo:
            return
        try:
            self.target.vectors.upsert(todo, namespace=ns)
            self.tally.vectors_copied += len(todo)
        except InvalidInput:
            # One record the target refuses (an id, a value) must not sink the whole batch.
            for record in todo:
                try:
                    self.target.vectors.upsert([record], namespace=ns)
                    self.tally.vectors_copied += 1
                except InvalidInput as exc:
                    self.tally.problems[record.id] = f"vector refused: {exc.message}"

    def _blob(self, pair: _Pair) -> str:
        """ "copied", "present", or why the blob could not be copied."""
        info = pair.blob
        assert info is not None  # only pairs with a source blob get here
        existing = self.target.blobs.head(pair.target.key)
        if existing is not None and same_blob(info, existing):
            return "present"
        try:
            data = self.source.blobs.get(pair.source.key, max_bytes=self.max_blob_bytes)
            self.target.blobs.put(
                pair.target.key,
                data,
                content_type=info.content_type,
                metadata=blob_metadata(pair.source, info),
            )
        except InvalidInput as exc:  # over the byte cap, or a key the target cannot hold
            return f"blob not copied: {exc.message}"
        return "copied"
