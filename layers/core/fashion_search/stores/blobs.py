"""The blob port: image bytes. Adapters: ``aws.s3_blobs`` and ``embedded.folder_blobs``.

``BlobStore`` is a base class like the vector port (``stores.vectors``): its public methods check
the key and the user metadata by S3's rules (for every home, so a folder home never accepts what
the bucket would refuse), and refuse a read over ``max_bytes``; adapters implement ``_methods``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator

from fashion_search.errors import InvalidInput, PayloadTooLarge
from fashion_search.stores.port import Port
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


class BlobStore(Port):
    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        """Store ``data`` under ``key`` (replacing); metadata comes back as S3 returns it."""
        return self._put(check_key(key), data, content_type, normalise_metadata(metadata))

    def get(self, key: str, *, max_bytes: int) -> bytes:
        """Raises ``NotFound`` if absent and ``PayloadTooLarge`` over ``max_bytes``
        (without reading the whole object)."""
        if max_bytes < 0:
            raise InvalidInput(f"max_bytes must be >= 0, got {max_bytes}", field="max_bytes")
        data = self._get(check_key(key), max_bytes)
        refuse_over(key, len(data), max_bytes)  # it grew while it was read
        return data

    def head(self, key: str) -> BlobInfo | None:
        return self._head(check_key(key))

    def delete(self, key: str) -> None:
        """Deleting a key that is not there is a no-op."""
        self._delete(check_key(key))

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``, in key order."""

    def url(self, key: str) -> str:
        """A URL a browser can open: presigned GET (S3) or the API's local image route."""
        return self._url(check_key(key))

    # -- what an adapter implements (keys and metadata checked) -----------------------------

    @abstractmethod
    def _put(
        self, key: str, data: bytes, content_type: str | None, metadata: dict[str, str]
    ) -> BlobInfo: ...

    @abstractmethod
    def _get(self, key: str, max_bytes: int) -> bytes:
        """The bytes, or at most ``max_bytes + 1`` of them (``refuse_over`` first when the size
        is known before reading)."""

    @abstractmethod
    def _head(self, key: str) -> BlobInfo | None: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _url(self, key: str) -> str: ...


def refuse_over(key: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise PayloadTooLarge(f"blob {key!r} is {size} bytes or more, over the {max_bytes} cap")
