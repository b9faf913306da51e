"""How one item looks in the other home: its blob key, its catalog row, its blob metadata, and
when what the target already holds counts as "already copied" (the resume rule)."""

from __future__ import annotations

import dataclasses

import numpy as np

from fashion_search.errors import InvalidInput
from fashion_search.ingest.metadata import tags_to_user_metadata
from fashion_search.stores.blobs import normalise_metadata
from fashion_search.types import BlobInfo, CatalogItem, Vector, image_id_for_key

# Two float32 vectors at least this close (cosine) are the same vector: Pinecone returns values
# through JSON, exact for float32 but worth a tolerance, and verification uses the same bar.
SAME_VECTOR_COSINE = 0.9999
# What makes two catalog rows the same item; the rest (bucket, eTag, version, ordering token)
# belongs to the home that wrote it.
_ITEM_FIELDS = (
    "image_id",
    "key",
    "status",
    "tags",
    "tags_predicted",
    "display_name",
    "content_hash",
    "model_id",
    "reason",
)


def target_key(key: str, *, source_prefix: str, target_prefix: str) -> str:
    """``images/tops/a.jpg`` (AWS, prefix ``images/``) <-> ``tops/a.jpg`` (embedded, no prefix):
    the key relative to the ingest prefix is kept, so the image id stays the same."""
    rel = key[len(source_prefix) :] if source_prefix and key.startswith(source_prefix) else key
    return target_prefix + rel


def target_item(
    item: CatalogItem,
    *,
    key: str,
    target_prefix: str,
    bucket: str | None,
    embedding: Vector | None,
    etag: str | None = None,
) -> CatalogItem:
    """The row the target home gets. Ordering tokens are home-specific (a folder mtime means
    nothing next to an S3 sequencer), so the copy starts at "", the loader's lowest token: any
    later real event on the target wins over it. ``etag`` is the one the target's blob will
    have (see ``md5_etag``); the version id is the target's own, written by its ingest."""
    if image_id_for_key(key, target_prefix) != item.image_id:
        raise InvalidInput(
            f"item {item.image_id!r}: key {item.key!r} maps to {key!r}, whose image id in the "
            "target home would differ",
            field="key",
        )
    return dataclasses.replace(
        item,
        key=key,
        bucket=bucket,
        etag=etag,
        version_id=None,
        ordering_token="",
        embedding=embedding,
        tags=dict(item.tags),
    )


def same_item(a: CatalogItem, b: CatalogItem) -> bool:
    if any(getattr(a, name) != getattr(b, name) for name in _ITEM_FIELDS):
        return False
    for x, y in ((a.embedding, b.embedding), (a.text_embedding, b.text_embedding)):
        if x is None or y is None:
            if x is not None or y is not None:
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def cosine(a: Vector, b: Vector) -> float:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape:
        return -1.0
    denom = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    return float(a64 @ b64) / denom if denom else -1.0


def same_blob(source: BlobInfo, target: BlobInfo) -> bool:
    """Sizes equal and, when both eTags are plain MD5s (single-part uploads, the folder store),
    eTags equal. A multipart eTag ("...-3") is not an MD5 of the bytes: size decides then."""
    if source.size != target.size:
        return False
    if source.etag and target.etag and "-" not in source.etag + target.etag:
        return source.etag == target.etag
    return True


def md5_etag(info: BlobInfo | None) -> str | None:
    """The eTag a copy of this blob will have: the folder store's eTag is the MD5 of the bytes,
    and so is S3's for a single-part upload (what ``put`` does). A multipart eTag ("...-3") is
    not; None then (S3 objects encrypted with SSE-KMS get another eTag, which only means an
    ingest of the copy cannot recognise it by eTag and falls back to the content hash)."""
    if info is None or not info.etag or "-" in info.etag:
        return None
    return info.etag


def blob_metadata(item: CatalogItem, source: BlobInfo) -> dict[str, str]:
    """The source blob's user metadata plus the item's tags in the loader's format, so an ingest
    of the copied object finds the same tags. Predicted tags are not written as metadata: they
    would come back as given tags; the catalog row keeps them."""
    meta = dict(source.metadata)
    tags = {} if item.tags_predicted else item.tags
    meta.update(tags_to_user_metadata(tags, item.display_name))
    try:
        return normalise_metadata(meta)
    except InvalidInput:
        # Over S3's 2 KB: the blob goes without it; tags live in the catalog row anyway.
        return {}
