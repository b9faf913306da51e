"""Pure, typed transforms from an RGB picture to the image tower's float32 input.

They follow open_clip's (and OpenAI CLIP's torchvision) semantics so that embeddings match the
reference: ``shortest`` resizes the short side to S and centre-crops (CLIP), ``squash`` resizes
to SxS ignoring the aspect ratio (SigLIP), ``longest`` resizes the long side to S and pads with
``fill_color``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from fashion_search.images import check_aspect_ratio, to_rgb
from fashion_search.model.bundle import Interpolation, PreprocessConfig

RESAMPLE: Final[dict[Interpolation, Image.Resampling]] = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def shortest_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """torchvision ``Resize(size)``: short side -> size, long side scaled and truncated."""
    if width <= height:
        return size, max(1, int(size * height / width))
    return max(1, int(size * width / height)), size


def longest_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """open_clip ``ResizeKeepRatio(longest=1)``: long side -> size, short side rounded."""
    ratio = max(width, height) / size
    return max(1, round(width / ratio)), max(1, round(height / ratio))


def center_crop_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """torchvision ``CenterCrop``: the offsets are rounded halves."""
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return left, top, left + size, top + size


def resize_for_model(img: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """An RGB picture of exactly ``cfg.size`` x ``cfg.size`` following ``cfg.resize_mode``.

    Raises ``InvalidImage`` for a picture over ``images.MAX_ASPECT_RATIO`` before resizing: the
    ``shortest`` intermediate is size x (size x ratio) pixels, so the ratio bounds the work here
    for every caller (decoded uploads, PIL images handed to the embedder, training, eval)."""
    size = cfg.size
    resample = RESAMPLE[cfg.interpolation]
    width, height = img.size
    check_aspect_ratio(width, height)
    if cfg.resize_mode == "squash":
        if (width, height) == (size, size):
            return img
        return img.resize((size, size), resample=resample)
    if cfg.resize_mode == "longest":
        new_w, new_h = longest_side_size(width, height, size)
        if (new_w, new_h) != (width, height):
            img = img.resize((new_w, new_h), resample=resample)
        if (new_w, new_h) == (size, size):
            return img
        canvas = Image.new("RGB", (size, size), cfg.fill_color)
        canvas.paste(img, ((size - new_w) // 2, (size - new_h) // 2))
        return canvas
    # shortest: resize, then centre-crop
    new_w, new_h = shortest_side_size(width, height, size)
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), resample=resample)
    if (new_w, new_h) == (size, size):
        return img
    return img.crop(center_crop_box(new_w, new_h, size))


def normalise_into(img: Image.Image, cfg: PreprocessConfig, out: NDArray[np.float32]) -> None:
    """Write ``(pixel / 255 - mean) / std`` of an SxS RGB picture into ``out`` [3, S, S]."""
    hwc = np.asarray(img, dtype=np.uint8)
    if hwc.shape != (cfg.size, cfg.size, 3):
        raise ValueError(f"expected an RGB picture of {cfg.size}x{cfg.size}, got {hwc.shape}")
    # One fused multiply-add per pixel: x * (1 / (255 std)) - mean / std.
    scale = np.asarray([1.0 / (255.0 * s) for s in cfg.std], dtype=np.float32)
    offset = np.asarray([-m / s for m, s in zip(cfg.mean, cfg.std, strict=True)], np.float32)
    chw = hwc.transpose(2, 0, 1)
    np.multiply(chw, scale[:, None, None], out=out, casting="unsafe")
    out += offset[:, None, None]


def preprocess_image(img: Image.Image, cfg: PreprocessConfig) -> NDArray[np.float32]:
    """One RGB picture -> float32 [3, S, S]."""
    out = np.empty((3, cfg.size, cfg.size), dtype=np.float32)
    normalise_into(resize_for_model(to_rgb(img), cfg), cfg, out)
    return out


def preprocess_batch(images: Sequence[Image.Image], cfg: PreprocessConfig) -> NDArray[np.float32]:
    """RGB pictures -> float32 [N, 3, S, S]."""
    out = np.empty((len(images), 3, cfg.size, cfg.size), dtype=np.float32)
    for i, img in enumerate(images):
        normalise_into(resize_for_model(to_rgb(img), cfg), cfg, out[i])
    return out
