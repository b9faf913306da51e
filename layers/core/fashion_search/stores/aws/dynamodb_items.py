"""Catalog items <-> DynamoDB attribute maps (layout in docs/stores-catalog.md)."""

from __future__ import annotations

from typing import Any

from fashion_search.errors import StoreError
from fashion_search.stores.catalog import decode_embedding, encode_embedding
from fashion_search.types import CatalogItem, ItemStatus

ITEM_PREFIX = "item#"  # an item's pk is this + its image_id
OPTIONAL_FIELDS = (
    "bucket",
    "display_name",
    "content_hash",
    "etag",
    "version_id",
    "model_id",
    "reason",
)
Attrs = dict[str, Any]


def encode_item(item: CatalogItem) -> Attrs:
    attrs: Attrs = {
        "pk": {"S": ITEM_PREFIX + item.image_id},
        "image_id": {"S": item.image_id},
        "key": {"S": item.key},
        "status": {"S": ItemStatus(item.status).value},
        "tags": {"M": {k: {"S": str(v)} for k, v in item.tags.items()}},
        "tags_predicted": {"BOOL": bool(item.tags_predicted)},
        "ordering_token": {"S": item.ordering_token},
        "created_at": {"N": repr(float(item.created_at))},
        "updated_at": {"N": repr(float(item.updated_at))},
    }
    for name in OPTIONAL_FIELDS:
        value = getattr(item, name)
        # Index keys may not be empty strings, so "" is stored as absent everywhere.
        if value:
            attrs[name] = {"S": value}
    if item.embedding is not None:
        blob, dim = encode_embedding(item.embedding)
        attrs["embedding"], attrs["embedding_dim"] = {"B": blob}, {"N": str(dim)}
        if item.text_embedding is not None:
            text_blob, text_dim = encode_embedding(item.text_embedding)
            if text_dim == dim:  # one model made both; a mismatch is not a product document
                attrs["text_embedding"] = {"B": text_blob}
    return attrs


def decode_item(attrs: Attrs) -> CatalogItem:
    def text(name: str) -> str | None:
        return attrs[name]["S"] if name in attrs else None

    try:
        status = ItemStatus(attrs["status"]["S"])
        embedding = (
            decode_embedding(bytes(attrs["embedding"]["B"]), int(attrs["embedding_dim"]["N"]))
            if "embedding" in attrs
            else None
        )
        text_embedding = (
            decode_embedding(bytes(attrs["text_embedding"]["B"]), int(attrs["embedding_dim"]["N"]))
            if "text_embedding" in attrs and "embedding_dim" in attrs
            else None
        )
        return CatalogItem(
            image_id=attrs["image_id"]["S"],
            key=attrs["key"]["S"],
            status=status,
            tags={k: v["S"] for k, v in attrs.get("tags", {}).get("M", {}).items()},
            tags_predicted=bool(attrs.get("tags_predicted", {}).get("BOOL", False)),
            ordering_token=attrs.get("ordering_token", {}).get("S", ""),
            embedding=embedding,
            text_embedding=text_embedding,
            created_at=float(attrs["created_at"]["N"]),
            updated_at=float(attrs["updated_at"]["N"]),
            **{name: text(name) for name in OPTIONAL_FIELDS},
        )
    except (KeyError, ValueError) as exc:
        raise StoreError(f"malformed catalog item {attrs.get('pk')}: {exc!r}") from exc
