"""The query contract: what a search asks for, and its defaults, written here only.

The API's request models (and so its OpenAPI document), the CLI and the benchmarks take the
defaults from here; the Streamlit UI reads them from the OpenAPI document. ``alpha``'s default
is a deployment setting (``settings.search.alpha``), applied by the ``Searcher``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fashion_search.images import Picture
from fashion_search.types import Filter

# "The closest image" for words; a few neighbours for a picture.
TOP_K_TEXT: Final = 1
TOP_K_IMAGE: Final = 3
# q = w_image * image + w_text * text - w_negative * negative_text, normalised (docs/api.md).
W_IMAGE: Final = 1.0
W_TEXT: Final = 1.0
W_NEGATIVE: Final = 0.5


@dataclass(slots=True)
class Query:
    """A multimodal query; at least one of image/text must be present.

    ``image`` is the query picture's bytes (decoded by the embedder) or a ``Picture`` the caller
    decoded already (the API does, so a bad upload names the field it came in).
    """

    text: str | None = None
    negative_text: str | None = None
    image: bytes | Picture | None = None
    image_url: str | None = None
    image_id: str | None = None
    w_image: float = W_IMAGE
    w_text: float = W_TEXT
    w_negative: float = W_NEGATIVE
    # None: TOP_K_IMAGE with an image, else TOP_K_TEXT.
    top_k: int | None = None
    filters: Filter | None = None
    # Dense vs lexical weight for the text (None: the settings' default); 1 = dense only.
    alpha: float | None = None

    @property
    def has_image(self) -> bool:
        return any(x is not None for x in (self.image, self.image_url, self.image_id))

    def resolved_top_k(self) -> int:
        if self.top_k is not None:
            return self.top_k
        return TOP_K_IMAGE if self.has_image else TOP_K_TEXT
