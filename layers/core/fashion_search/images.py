"""The one safe image decoder: every image that reaches a model passes through ``decode_image``.

It refuses what it should not decode (over the byte cap, formats outside an allow-list,
decompression bombs, truncated files) *before* large allocations, and hands back an upright RGB
picture (EXIF orientation applied, alpha flattened on white, frame 0 of animations).
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from fashion_search.errors import InvalidImage, InvalidInput, PayloadTooLarge

log = logging.getLogger(__name__)

# Formats we open on purpose. EPS (runs Ghostscript), PDF, FITS, GD and friends are refused:
# Pillow only tries the plugins named here.
ALLOWED_FORMATS: Final[tuple[str, ...]] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

# The most elongated picture we take (long side : short side). The model resizes the short side
# up to its input size (``resize_mode: shortest``), so the work grows with this ratio: a 475-byte
# 1 x 100000 PNG became a 64 x 6400000 intermediate (2 GB, 7 s). At 20:1 the largest intermediate
# is size x 20 size (224 px: 3 MB) whatever the picture; product photos and banners stay far below.
MAX_ASPECT_RATIO: Final[int] = 20

# Truncated files are errors, never half-grey pictures (this is Pillow's default; keep it so).
ImageFile.LOAD_TRUNCATED_IMAGES = False

_MAGIC: Final[tuple[tuple[bytes, int, str], ...]] = (
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
)


def sniff_image_type(data: bytes) -> str | None:
    """The image type told by the magic bytes: "jpeg", "png", "webp", "gif" or None."""
    for magic, offset, name in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    target_size: int | None = None,
) -> Image.Image:
    """Decode ``data`` into an upright RGB image, or raise ``PayloadTooLarge`` / ``InvalidImage``.

    ``target_size`` lets JPEGs decode at a reduced scale (DCT scaling, several times faster) while
    both sides stay >= ``target_size``, which is all a model resizing to that size needs.
    """
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes, over the limit of {max_bytes} bytes")
    if not data:
        raise InvalidImage("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and 2x it; we turn the warning into a refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            _check_pixels(img, max_pixels)
            check_aspect_ratio(*img.size)
            if target_size is not None and img.format in ("JPEG", "MPO"):  # MPO: multi-picture JPEG
                img.draft("RGB", (target_size, target_size))
            # Animations: an opened image sits on frame 0 and load() decodes that frame only;
            # never ask for n_frames, which walks every frame of a (possibly huge) animation.
            img.load()
            # EXIF orientation: turn the picture upright (orientation 6/8 phone photos).
            return to_rgb(ImageOps.exif_transpose(img))
    except (PayloadTooLarge, InvalidImage):
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        kind = sniff_image_type(data)
        why = f"a {kind} that cannot be read" if kind else "not a supported image format"
        allowed = ", ".join(f.lower() for f in ALLOWED_FORMATS)
        raise InvalidImage(f"image is {why} (supported: {allowed})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Truncated data, corrupt chunks, bad headers.
        raise InvalidImage(f"image could not be decoded: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Picture:
    """A decoded query picture and the sha256 of the bytes it came from (the catalog finds
    byte-identical copies by it)."""

    image: Image.Image
    sha256: str


def decode_picture(
    data: bytes, *, field: str, max_bytes: int, max_pixels: int, target_size: int | None
) -> Picture:
    """``decode_image`` for a query's upload: a refusal names ``field``, the part it came in."""
    try:
        image = decode_image(
            data, max_bytes=max_bytes, max_pixels=max_pixels, target_size=target_size
        )
    except InvalidInput as exc:
        exc.field = field
        raise
    return Picture(image, hashlib.sha256(data).hexdigest())


def _check_pixels(img: Image.Image, max_pixels: int) -> None:
    """Refuse by the *declared* size, before any pixel buffer is allocated."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"image has an empty size {width}x{height}")
    if width * height > max_pixels:
        raise InvalidImage(
            f"image is {width}x{height} = {width * height} pixels, "
            f"over the limit of {max_pixels} pixels (decompression bomb guard)"
        )


def check_aspect_ratio(width: int, height: int) -> None:
    """Refuse a picture more elongated than ``MAX_ASPECT_RATIO``, before any resize of it."""
    short, long = sorted((width, height))
    if short <= 0 or long > short * MAX_ASPECT_RATIO:
        ratio = f"{long / short:.0f}:1" if short > 0 else "unbounded"
        raise InvalidImage(
            f"image is {width}x{height}: its aspect ratio {ratio} is over the limit of "
            f"{MAX_ASPECT_RATIO}:1 (the model needs a picture, not a strip)"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> RGB; transparency is flattened on white (product photos sit on white)."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        # Palette images may carry transparency in img.info; RGBA makes it explicit.
        img = img.convert("RGBA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scale to 8 bits rather than clip (convert("L") clips at 255).
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if img.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")
