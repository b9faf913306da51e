"""The blob port: image bytes. Adapters: ``blobs_s3`` and ``blobs_folder``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from fashion_search.types import BlobInfo


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
