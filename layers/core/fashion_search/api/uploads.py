"""Query pictures sent in a request (a multipart ``file``, a JSON ``image_base64``), decoded here
so that a refusal names the field it came in; the ``Searcher`` gets the decoded ``Picture``."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fashion_search.errors import InvalidInput, PayloadTooLarge
from fashion_search.images import Picture, decode_picture

if TYPE_CHECKING:
    from fashion_search.search import Searcher

_DATA_URL: Final = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,", re.IGNORECASE)
_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def decode_base64(value: str, *, field: str, max_bytes: int) -> bytes:
    """Standard or URL-safe base64, padded or not, with or without a ``data:image/..`` prefix."""
    text = _DATA_URL.sub("", value.strip(), count=1)
    text = re.sub(r"\s+", "", text)
    if not text:
        raise InvalidInput(f"{field} is empty", field=field)
    if len(text) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(f"{field} decodes to more than {max_bytes} bytes", field=field)
    if not _BASE64.fullmatch(text):
        raise InvalidInput(f"{field} is not valid base64", field=field)
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field} is not valid base64", field=field) from exc


@dataclass(frozen=True, slots=True)
class Uploads:
    """Decodes a request's query picture with the limits of the settings and the model."""

    max_bytes: int
    max_pixels: int
    # The model's input side: JPEGs decode at a reduced scale that still covers it (several
    # times faster than full size); None decodes at full size.
    target_size: int | None = None

    @classmethod
    def for_searcher(cls, searcher: Searcher) -> Uploads:
        limits = searcher.settings.limits
        size = getattr(searcher.embedder, "image_size", None)  # not part of the Embedder port
        return cls(
            max_bytes=limits.max_upload_bytes,
            max_pixels=limits.max_image_pixels,
            target_size=size if isinstance(size, int) else None,
        )

    def picture(self, data: bytes, *, field: str) -> Picture:
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"the upload is over {self.max_bytes} bytes", field=field)
        return decode_picture(
            data,
            field=field,
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
            target_size=self.target_size,
        )

    def base64_picture(self, value: str, *, field: str) -> Picture:
        return self.picture(
            decode_base64(value, field=field, max_bytes=self.max_bytes), field=field
        )
