"""What the rest of the core needs from a model: the ``Embedder`` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from fashion_search.errors import InvalidImage
from fashion_search.types import Vector


@dataclass(slots=True)
class ImageEmbeddings:
    """Embeddings of a batch of images, one row per input, in input order.

    Rows of inputs that failed to decode are all zero and their index is in ``errors``.
    """

    vectors: Vector  # float32 [N, D], L2-normalised rows
    errors: dict[int, InvalidImage] = field(default_factory=dict)

    def ok(self, i: int) -> bool:
        return i not in self.errors

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


@runtime_checkable
class Embedder(Protocol):
    @property
    def model_id(self) -> str:
        """A stable name of the model (bundle name + short hash of its files)."""
        ...

    @property
    def dim(self) -> int: ...

    def embed_texts(self, texts: Sequence[str]) -> Vector:
        """float32 [N, D], L2-normalised."""
        ...

    def embed_images(self, images: Sequence[bytes | Image.Image]) -> ImageEmbeddings:
        """Decode (safely) and embed; a bad image gives a per-item error, not a failed batch."""
        ...


def l2_normalise(x: np.ndarray) -> Vector:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    out: Vector = (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out
