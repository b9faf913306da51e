"""Preprocessing transforms: resize modes, interpolation and normalisation, on synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
from fashion_search.errors import BundleError, InvalidImage
from fashion_search.model.bundle import PreprocessConfig
from fashion_search.model.preprocess import (
    center_crop_box,
    longest_side_size,
    preprocess_batch,
    preprocess_image,
    resize_for_model,
    shortest_side_size,
)
from PIL import Image

IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def bands(width: int = 200, height: int = 100) -> Image.Image:
    """Black outer quarters (left/right), white centre half."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, width // 4 : 3 * width // 4] = 255
    return Image.fromarray(a, "RGB")


def test_shortest_resizes_short_side_then_centre_crops() -> None:
    cfg = PreprocessConfig(size=64, resize_mode="shortest", **IDENTITY)
    out = np.asarray(resize_for_model(bands(), cfg))
    assert out.shape == (64, 64, 3)
    assert out.mean() > 250  # only the white centre survives the crop


def test_squash_keeps_everything_distorted() -> None:
    cfg = PreprocessConfig(size=64, resize_mode="squash", interpolation="bilinear", **IDENTITY)
    out = np.asarray(resize_for_model(bands(), cfg))
    assert out.shape == (64, 64, 3)
    assert out[:, :14].max() < 10 and out[:, 18:46].min() > 245 and out[:, 50:].max() < 10


def test_longest_pads_with_fill_colour() -> None:
    cfg = PreprocessConfig(size=64, resize_mode="longest", fill_color=(10, 20, 30), **IDENTITY)
    out = np.asarray(resize_for_model(bands(200, 100), cfg))
    assert out.shape == (64, 64, 3)
    assert (out[:16] == (10, 20, 30)).all() and (out[48:] == (10, 20, 30)).all()
    assert out[16:48, 24:40].min() > 245


def test_size_rules_follow_torchvision_and_open_clip() -> None:
    assert shortest_side_size(200, 100, 64) == (128, 64)
    assert shortest_side_size(100, 333, 64) == (64, 213)  # int(), not round()
    assert longest_side_size(100, 333, 64) == (19, 64)
    assert center_crop_box(129, 64, 64) == (32, 0, 96, 64)


def test_normalisation_formula() -> None:
    cfg = PreprocessConfig(size=2, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    img = Image.new("RGB", (2, 2), (255, 0, 51))
    out = preprocess_image(img, cfg)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [1.0, -1.0, 0.1], rtol=1e-6)


def test_batch_equals_single_and_converts_modes() -> None:
    cfg = PreprocessConfig(size=32, mean=(0.4, 0.4, 0.4), std=(0.3, 0.3, 0.3))
    images = [bands().convert("L"), bands(50, 80), bands().convert("RGBA")]
    batch = preprocess_batch(images, cfg)
    assert batch.shape == (3, 3, 32, 32)
    for row, img in zip(batch, images, strict=True):
        np.testing.assert_array_equal(row, preprocess_image(img, cfg))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"size": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "crop"}, "resize_mode"),
        ({"size": [224, 160], "mean": [0.5] * 3, "std": [0.5] * 3}, "square"),
        ({"size": 224, "std": [0.5] * 3}, "mean"),
        ({"size": 224, "mean": [0.5] * 2, "std": [0.5] * 3}, "3 values"),
        ({"size": 224, "mean": [0.5] * 3, "std": [0.0] * 3}, "positive"),
        ({"size": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "x"}, "interpolation"),
    ],
)
def test_malformed_preprocess_cfg(raw: dict[str, object], message: str) -> None:
    with pytest.raises(BundleError, match=message):
        PreprocessConfig.from_json(raw)


def test_immich_preprocess_cfg_parses() -> None:
    raw = {
        "size": [224, 224],
        "mode": "RGB",
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }
    cfg = PreprocessConfig.from_json(raw)
    assert cfg.size == 224 and cfg.fill_color == (0, 0, 0)
    assert PreprocessConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("mode", ["shortest", "squash", "longest"])
@pytest.mark.parametrize(("width", "height"), [(1, 5000), (5000, 1)])
def test_resize_refuses_extreme_aspect_ratio_in_every_mode(
    mode: str, width: int, height: int
) -> None:
    # shortest would upscale 1 x 5000 to 64 x 320000 (61 MB; 1 x 100000 at 224 px: 20 GB).
    cfg = PreprocessConfig(size=64, mean=(0.5,) * 3, std=(0.5,) * 3, resize_mode=mode)  # type: ignore[arg-type]
    with pytest.raises(InvalidImage, match="aspect ratio"):
        resize_for_model(Image.new("RGB", (width, height)), cfg)
