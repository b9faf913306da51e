"""The shared vocabulary: catalog items, vector records, matches, metadata and filters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
# Pinecone's metadata types: strings, numbers, booleans, lists of strings. No null.
MetadataValue = str | int | float | bool | list[str]
Metadata = dict[str, MetadataValue]
# A filter in Pinecone's language: {"baseColour": {"$eq": "Red"}, "$or": [...]}.
Filter = dict[str, Any]

# The Kaggle "Fashion Product Images" tag columns. Items may carry other tags too.
TAG_FIELDS: tuple[str, ...] = (
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
)


class ItemStatus(StrEnum):
    PENDING = "PENDING"  # catalog row written, vector not yet confirmed
    INDEXED = "INDEXED"  # vector upserted
    FAILED = "FAILED"  # permanently refused; ``reason`` says why
    DELETED = "DELETED"  # tombstone: the blob was removed; stale creates are refused


def now() -> float:
    return time.time()


def image_id_for_key(key: str, prefix: str = "") -> str:
    """The image id of a blob key: relative to the ingest prefix, extension dropped.

    ``images/15970.jpg`` under prefix ``images/`` -> ``15970``; ``images/tops/a b.png`` ->
    ``tops/a b``. The catalog loader and the ingest of a later S3 event meet on this id.
    """
    rel = key[len(prefix) :] if prefix and key.startswith(prefix) else key
    head, dot, ext = rel.rpartition(".")
    return head if dot and head and not head.endswith("/") and "/" not in ext else rel


@dataclass(slots=True)
class CatalogItem:
    """One image. ``image_id`` is the blob key relative to the ingest prefix, without extension
    (``images/15970.jpg`` -> ``15970``), so a loader row and the later S3 event meet on it."""

    image_id: str
    key: str  # blob key: S3 key or path relative to the folder store root
    status: ItemStatus = ItemStatus.PENDING
    bucket: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tags_predicted: bool = False
    display_name: str | None = None
    content_hash: str | None = None  # sha256 hex of the image bytes
    etag: str | None = None
    version_id: str | None = None
    # Orders events for one key; a write with a smaller token than the stored one is stale.
    # S3: the notification's sequencer (zero-padded); folder: mtime_ns; loader: "" (lowest).
    ordering_token: str = ""
    model_id: str | None = None
    embedding: Vector | None = None  # the item's vector, kept so an index can be rebuilt
    # The display name's text vector (same model): the product document's text part
    # (``fashion_search.ingest.documents``), kept for the same reason. None: no name, image alone.
    text_embedding: Vector | None = None
    reason: str | None = None  # why FAILED
    created_at: float = field(default_factory=now)
    updated_at: float = field(default_factory=now)


@dataclass(slots=True, frozen=True)
class SparseVector:
    """Pinecone's sparse values: uint32 indices (ascending) and their weights."""

    indices: list[int]
    values: list[float]


@dataclass(slots=True, frozen=True)
class VectorRecord:
    id: str
    values: Vector
    metadata: Metadata = field(default_factory=dict)
    # The product's lexical terms (``fashion_search.lexical``), for indexes that hold them
    # (Pinecone's sparse-dense); the embedded home finds words with SQLite FTS5 instead.
    sparse: SparseVector | None = None


@dataclass(slots=True, frozen=True)
class Match:
    id: str
    score: float
    metadata: Metadata = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class BlobInfo:
    key: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: float | None = None
