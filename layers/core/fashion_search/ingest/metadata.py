"""Tags carried as blob user metadata (S3 ``x-amz-meta-*``), and the metadata written next to
each vector.

S3 lowercases user-metadata names and only carries US-ASCII values safely, so names are matched
case-insensitively and values are percent-encoded (only ``%`` and non-ASCII characters change;
"Red" stays "Red", so hand-set metadata works too).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from urllib.parse import quote, unquote

from fashion_search.types import TAG_FIELDS, CatalogItem, Metadata

DISPLAY_NAME_KEY = "display-name"
# Any other tag travels as ``tag-<name>`` so unrelated metadata never becomes a tag.
EXTRA_TAG_PREFIX = "tag-"
_DISPLAY_ALIASES = {"display-name", "display_name", "displayname", "productdisplayname"}
_CANONICAL = {name.lower(): name for name in TAG_FIELDS}
_SAFE = "".join(c for c in string.printable if c not in "%\t\n\r\x0b\x0c")


def encode_value(value: str) -> str:
    return quote(value, safe=_SAFE)


def decode_value(value: str) -> str:
    return unquote(value)


def tags_to_user_metadata(tags: Mapping[str, str], display_name: str | None) -> dict[str, str]:
    """What the loader attaches to an uploaded blob."""
    out: dict[str, str] = {}
    for name, value in tags.items():
        if not value:
            continue
        meta_name = name.lower() if name in TAG_FIELDS else EXTRA_TAG_PREFIX + name.lower()
        out[meta_name] = encode_value(value)
    if display_name:
        out[DISPLAY_NAME_KEY] = encode_value(display_name)
    return out


def tags_from_user_metadata(metadata: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """(tags, display name) from a blob's user metadata; unknown names are ignored."""
    tags: dict[str, str] = {}
    display_name: str | None = None
    for raw_name, raw_value in metadata.items():
        name = raw_name.lower().removeprefix("x-amz-meta-")
        value = decode_value(raw_value).strip()
        if not value:
            continue
        if name in _DISPLAY_ALIASES:
            display_name = value
        elif name in _CANONICAL:
            tags[_CANONICAL[name]] = value
        elif name.startswith(EXTRA_TAG_PREFIX) and len(name) > len(EXTRA_TAG_PREFIX):
            tags[name[len(EXTRA_TAG_PREFIX) :]] = value
    return tags, display_name


def vector_metadata(item: CatalogItem) -> Metadata:
    """Metadata stored with the vector: filters run on it, results display it. Pinecone takes
    strings, numbers, booleans and string lists, never null: absent values are left out."""
    md: Metadata = {"key": item.key, "tags_predicted": item.tags_predicted}
    if item.display_name:
        md["display_name"] = item.display_name
    if item.content_hash:
        md["content_hash"] = item.content_hash
    for name, value in item.tags.items():
        if name in md:
            continue  # a tag never overwrites the fields above
        md[name] = int(value) if name == "year" and value.isdigit() else value
    return md
