"""The blob port: image bytes. Adapters: ``aws.s3_blobs`` and ``embedded.folder_blobs``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from fashion_search.errors import InvalidInput
from fashion_search.types import BlobInfo

# S3 caps user metadata at 2 KB (keys and values, UTF-8) and sends it as HTTP headers, which
# only carry ASCII safely; every adapter enforces the same rule so the folder home is no laxer.
MAX_METADATA_BYTES = 2048
MAX_KEY_BYTES = 1024


def check_key(key: str) -> str:
    """The rules every blob store applies to a key (S3's): non-empty, <= 1024 UTF-8 bytes."""
    if not isinstance(key, str) or not key or "\x00" in key:
        raise InvalidInput("a blob key must be a non-empty string without NUL", field="key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidInput(f"blob key is over {MAX_KEY_BYTES} bytes", field="key")
    return key


def normalise_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """User metadata as S3 returns it: lower-case keys; printable ASCII; <= 2 KB in all."""
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        text = f"{name}{value}"
        if not name or not (text.isascii() and text.isprintable()):
            raise InvalidInput(
                f"blob metadata {name!r} must be non-empty printable ASCII", field="metadata"
            )
        out[name.lower()] = value
    if sum(len(k) + len(v) for k, v in out.items()) > MAX_METADATA_BYTES:
        raise InvalidInput(f"blob metadata is over {MAX_METADATA_BYTES} bytes", field="metadata")
    return out


@runtime_checkable
class BlobStore(Protocol):
    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo: ...

    def get(self, key: str, *, max_bytes: int) -> bytes:
        """Raises ``NotFound`` if absent and ``PayloadTooLarge`` over ``max_bytes``
        (without reading the whole object)."""
        ...

    def head(self, key: str) -> BlobInfo | None: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> Iterator[BlobInfo]: ...

    def url(self, key: str) -> str:
        """A URL a browser can open: presigned GET (S3) or the API's local image route."""
        ...
