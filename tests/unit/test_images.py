"""The safe decoder: RELIABILITY.md "Image decoding"."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from fashion_search.errors import InvalidImage, PayloadTooLarge
from fashion_search.images import decode_image, sniff_image_type
from PIL import Image

MB = 1024 * 1024
LIMITS = {"max_bytes": 8 * MB, "max_pixels": 50_000_000}


def save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def arrow(width: int = 60, height: int = 40) -> Image.Image:
    """Asymmetric picture: red left half, blue top-right, green bottom-right."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 2] = (255, 0, 0)
    a[: height // 2, width // 2 :] = (0, 0, 255)
    a[height // 2 :, width // 2 :] = (0, 255, 0)
    return Image.fromarray(a, "RGB")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that *declares* width x height with a tiny (invalid) body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.mark.parametrize(
    ("fmt", "kind"), [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif")]
)
def test_allowed_formats_decode_to_rgb(fmt: str, kind: str) -> None:
    data = save(arrow(), fmt)
    assert sniff_image_type(data) == kind
    img = decode_image(data, **LIMITS)
    assert img.mode == "RGB" and img.size == (60, 40)


def test_sniff_unknown() -> None:
    assert sniff_image_type(b"%PDF-1.4 hello") is None
    assert sniff_image_type(b"") is None


def test_byte_cap_before_decoding() -> None:
    data = save(arrow(), "PNG")
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        decode_image(data, max_bytes=len(data) - 1, max_pixels=10**9)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, not an image",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
        b"SIMPLE  =                    T" + b" " * 2850,  # FITS header
    ],
    ids=["empty", "text", "eps", "pdf", "fits"],
)
def test_refused_formats(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        decode_image(data, **LIMITS)


def test_declared_giant_png_refused_before_allocation() -> None:
    data = png_header_only(50_000, 50_000)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidImage, match="pixels"):
            decode_image(data, **LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * MB  # 50k x 50k RGB would be 7.5 GB


@pytest.mark.parametrize(("width", "height"), [(1, 100_000), (100_000, 1), (3, 200), (210, 10)])
def test_extreme_aspect_ratio_refused_before_decoding(width: int, height: int) -> None:
    # Header only: had the decoder gone on to read pixels, it would say "could not be decoded".
    with pytest.raises(InvalidImage, match=r"aspect ratio .* over the limit of 20:1"):
        decode_image(png_header_only(width, height), **LIMITS)


@pytest.mark.parametrize(("width", "height"), [(20, 400), (1000, 50), (512, 512)])
def test_long_narrow_pictures_within_the_ratio_decode(width: int, height: int) -> None:
    img = decode_image(save(Image.new("RGB", (width, height), "red"), "PNG"), **LIMITS)
    assert img.size == (width, height)


def test_pixel_cap_is_configurable() -> None:
    with pytest.raises(InvalidImage, match="over the limit of 100 pixels"):
        decode_image(save(arrow(), "PNG"), max_bytes=MB, max_pixels=100)


def test_truncated_jpeg_refused() -> None:
    data = save(arrow(400, 300), "JPEG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2], **LIMITS)


# Orientation 6 means "turn 90 degrees clockwise to view", so the camera stored the picture
# turned counter-clockwise; 8 is the reverse.
@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)],
)
def test_exif_orientation_applied(orientation: int, stored_as: Image.Transpose) -> None:
    upright = arrow()
    exif = Image.Exif()
    exif[0x0112] = orientation
    for fmt in ("PNG", "JPEG"):
        data = save(upright.transpose(stored_as), fmt, exif=exif)
        img = decode_image(data, **LIMITS)
        assert img.size == upright.size
        diff = np.abs(np.asarray(img, np.int16) - np.asarray(upright, np.int16))
        assert diff.mean() < 8  # JPEG noise only; a wrong rotation differs by ~170


def test_cmyk_jpeg_becomes_rgb() -> None:
    img = decode_image(save(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG"), **LIMITS)
    assert img.mode == "RGB"
    r, g, b = img.getpixel((10, 10))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60


def test_transparency_flattened_on_white() -> None:
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    img = decode_image(save(rgba, "PNG"), **LIMITS)
    assert img.getpixel((5, 5)) == (255, 255, 255)
    assert img.getpixel((0, 0)) == (255, 0, 0)


def test_palette_with_transparency_and_la() -> None:
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    data = save(p, "PNG", transparency=0)
    img = decode_image(data, **LIMITS)
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 1)) == (0, 200, 0)
    la = Image.new("LA", (4, 4), (10, 0))
    assert decode_image(save(la, "PNG"), **LIMITS).getpixel((2, 2)) == (255, 255, 255)


def test_16_bit_png_scaled_not_clipped() -> None:
    a = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = save(Image.fromarray(a), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    img = decode_image(data, **LIMITS)
    assert img.mode == "RGB"
    values = [img.getpixel((x, 0))[0] for x in range(3)]  # type: ignore[index]
    assert values[0] == 0 and 120 <= values[1] <= 135 and values[2] == 255


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    img = decode_image(buf.getvalue(), **LIMITS)
    r, g, b = img.getpixel((8, 8))  # type: ignore[misc]
    assert r > 200 and g < 50 and b < 50


def test_jpeg_draft_decodes_smaller_but_not_below_target() -> None:
    data = save(arrow(2000, 1500), "JPEG")
    img = decode_image(data, **LIMITS, target_size=224)
    assert min(img.size) >= 224 and img.size[0] < 2000
    full = decode_image(data, **LIMITS)
    assert full.size == (2000, 1500)
