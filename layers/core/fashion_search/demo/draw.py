"""Procedural product photos: one flat-shaded garment/accessory silhouette on a light background.

Shapes are drawn at 2x and downsampled so edges are anti-aliased like a product shot. Every
random choice comes from the ``random.Random`` passed in, so an image is a pure function of it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]
Point = tuple[float, float]
# A shape is a list of polygons in a unit box (0..1, y down); ``narrow`` tapers tops (women's cut).
ShapeFn = Callable[[bool], list[list[Point]]]

_SCALE = 2  # supersampling factor


def _tshirt(narrow: bool) -> list[list[Point]]:
    w = 0.06 if narrow else 0.0
    return [
        [(0.32, 0.12), (0.42, 0.10), (0.50, 0.16), (0.58, 0.10), (0.68, 0.12), (0.90, 0.28),
         (0.80, 0.40), (0.70, 0.33), (0.70 - w, 0.60), (0.70, 0.90), (0.30, 0.90),
         (0.30 + w, 0.60), (0.30, 0.33), (0.20, 0.40), (0.10, 0.28)],
    ]  # fmt: skip


def _shirt(narrow: bool) -> list[list[Point]]:
    w = 0.05 if narrow else 0.0
    return [
        [(0.33, 0.10), (0.50, 0.18), (0.67, 0.10), (0.78, 0.16), (0.95, 0.80), (0.85, 0.84),
         (0.72, 0.36), (0.72 - w, 0.62), (0.72, 0.92), (0.28, 0.92), (0.28 + w, 0.62),
         (0.28, 0.36), (0.15, 0.84), (0.05, 0.80), (0.22, 0.16)],
    ]  # fmt: skip


def _jacket(narrow: bool) -> list[list[Point]]:
    w = 0.04 if narrow else 0.0
    return [
        [(0.30, 0.08), (0.50, 0.30), (0.70, 0.08), (0.82, 0.14), (0.97, 0.88), (0.84, 0.92),
         (0.74, 0.40), (0.76 - w, 0.66), (0.78, 0.95), (0.22, 0.95), (0.24 + w, 0.66),
         (0.26, 0.40), (0.16, 0.92), (0.03, 0.88), (0.18, 0.14)],
    ]  # fmt: skip


def _dress(narrow: bool) -> list[list[Point]]:
    return [
        [(0.38, 0.05), (0.42, 0.05), (0.44, 0.20), (0.56, 0.20), (0.58, 0.05), (0.62, 0.05),
         (0.64, 0.30), (0.58, 0.42), (0.85, 0.95), (0.15, 0.95), (0.42, 0.42), (0.36, 0.30)],
    ]  # fmt: skip


def _skirt(narrow: bool) -> list[list[Point]]:
    return [[(0.34, 0.18), (0.66, 0.18), (0.66, 0.26), (0.86, 0.82), (0.14, 0.82), (0.34, 0.26)]]


def _trousers(narrow: bool) -> list[list[Point]]:
    t = 0.04 if narrow else 0.0
    return [
        [(0.30, 0.05), (0.70, 0.05), (0.72, 0.95), (0.54 + t, 0.95), (0.50, 0.30),
         (0.46 - t, 0.95), (0.28, 0.95)],
    ]  # fmt: skip


def _shorts(narrow: bool) -> list[list[Point]]:
    return [
        [(0.26, 0.22), (0.74, 0.22), (0.82, 0.70), (0.56, 0.74), (0.50, 0.44), (0.44, 0.74),
         (0.18, 0.70)],
    ]  # fmt: skip


def _sneaker(narrow: bool) -> list[list[Point]]:
    return [
        [(0.10, 0.72), (0.12, 0.52), (0.30, 0.50), (0.40, 0.36), (0.56, 0.34), (0.62, 0.48),
         (0.86, 0.56), (0.92, 0.66), (0.92, 0.72)],
    ]  # fmt: skip


def _heel(narrow: bool) -> list[list[Point]]:
    return [
        [(0.14, 0.30), (0.30, 0.28), (0.44, 0.46), (0.80, 0.66), (0.92, 0.72), (0.88, 0.76),
         (0.56, 0.72), (0.30, 0.56), (0.22, 0.56), (0.20, 0.86), (0.16, 0.86), (0.12, 0.50)],
    ]  # fmt: skip


def _handbag(narrow: bool) -> list[list[Point]]:
    return [[(0.24, 0.40), (0.76, 0.40), (0.88, 0.88), (0.12, 0.88)]]


def _cap(narrow: bool) -> list[list[Point]]:
    dome = [(0.5 + 0.30 * c, 0.62 - 0.42 * s) for c, s in _half_circle(16)]
    return [dome + [(0.20, 0.62)], [(0.60, 0.56), (0.95, 0.62), (0.92, 0.70), (0.60, 0.66)]]


def _half_circle(n: int) -> list[tuple[float, float]]:
    import math

    return [(math.cos(math.pi * i / n), math.sin(math.pi * i / n)) for i in range(n + 1)]


SHAPES: dict[str, ShapeFn] = {
    "Tshirts": _tshirt,
    "Shirts": _shirt,
    "Jackets": _jacket,
    "Dresses": _dress,
    "Skirts": _skirt,
    "Trousers": _trousers,
    "Jeans": _trousers,
    "Shorts": _shorts,
    "Casual Shoes": _sneaker,
    "Heels": _heel,
    "Handbags": _handbag,
    "Caps": _cap,
}


def _pattern_fill(
    size: int, pattern: str, base: RGB, accent: RGB, rng: random.Random
) -> Image.Image:
    """The garment's cloth: ``base`` with an ``accent`` pattern that never outweighs it.

    The base colour is the product's named colour, so it must dominate the picture: stripes
    and check bars take under a third of the period (a check's bars are also half-blended), dots
    about a fifth of the area.
    """
    img = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(img)
    period = int(size * rng.uniform(0.09, 0.14))
    off = rng.randrange(period)
    if pattern == "Striped":
        bar = max(2, round(period * 0.3))
        for y in range(-period + off, size, period):
            d.rectangle([0, y, size, y + bar - 1], fill=accent)
    elif pattern == "Dotted":
        r = max(2, period // 4)
        for row, y in enumerate(range(off, size, period)):
            shift = period // 2 if row % 2 else 0
            for x in range(off + shift, size, period):
                d.ellipse([x - r, y - r, x + r, y + r], fill=accent)
    elif pattern == "Checked":
        # Bars of a quarter period cover ~44% of the cloth; blended at 0.5 the accent weighs
        # ~22% of the colour, so a "Navy Blue Checked Shirt" reads navy, not accent.
        bar = max(2, period // 4)
        over = Image.new("RGB", (size, size), base)
        od = ImageDraw.Draw(over)
        for v in range(-period + off, size, period):
            od.rectangle([v, 0, v + bar - 1, size], fill=accent)
            od.rectangle([0, v, size, v + bar - 1], fill=accent)
        img = Image.blend(img, over, 0.5)
    return img


def _shade(c: RGB, f: float) -> RGB:
    return (
        max(0, min(255, int(c[0] * f))),
        max(0, min(255, int(c[1] * f))),
        max(0, min(255, int(c[2] * f))),
    )


def _details(d: ImageDraw.ImageDraw, article: str, px: Callable[[Point], Point], ink: RGB) -> None:
    """Small cues that tell similar silhouettes apart (collar, buttons, soles, stitching)."""
    line = max(2, _SCALE * 2)
    if article == "Shirts":
        d.polygon([px((0.36, 0.11)), px((0.50, 0.18)), px((0.42, 0.26))], fill=ink)
        d.polygon([px((0.64, 0.11)), px((0.50, 0.18)), px((0.58, 0.26))], fill=ink)
        for y in (0.32, 0.46, 0.60, 0.74):
            x, yy = px((0.50, y))
            d.ellipse([x - line, yy - line, x + line, yy + line], fill=ink)
    elif article == "Jackets":
        d.line([px((0.50, 0.30)), px((0.50, 0.95))], fill=ink, width=line * 2)
        d.line([px((0.30, 0.08)), px((0.44, 0.52))], fill=ink, width=line)
        d.line([px((0.70, 0.08)), px((0.56, 0.52))], fill=ink, width=line)
    elif article == "Jeans":
        d.line([px((0.30, 0.14)), px((0.70, 0.14))], fill=(225, 170, 40), width=line)
        d.line([px((0.37, 0.14)), px((0.40, 0.95))], fill=(225, 170, 40), width=line)
        d.line([px((0.63, 0.14)), px((0.60, 0.95))], fill=(225, 170, 40), width=line)
    elif article == "Casual Shoes":
        d.polygon([px((0.10, 0.72)), px((0.92, 0.72)), px((0.92, 0.80)), px((0.10, 0.80))],
                  fill=(250, 250, 250), outline=(90, 90, 90))  # fmt: skip
        for x in (0.42, 0.48, 0.54):
            d.line([px((x, 0.40)), px((x + 0.05, 0.50))], fill=ink, width=line)
    elif article == "Handbags":
        d.arc([px((0.32, 0.16)), px((0.68, 0.56))], 180, 360, fill=ink, width=line * 2)
    elif article == "Caps":
        x, y = px((0.50, 0.21))
        d.ellipse([x - line * 2, y - line * 2, x + line * 2, y + line * 2], fill=ink)
    elif article in ("Trousers", "Shorts", "Skirts"):
        top = 0.05 if article == "Trousers" else 0.22 if article == "Shorts" else 0.18
        d.line([px((0.30, top + 0.04)), px((0.70, top + 0.04))], fill=ink, width=line)


def draw_product(
    rng: random.Random,
    *,
    article: str,
    base: RGB,
    accent: RGB,
    pattern: str,
    narrow: bool,
    child: bool,
    size: int,
) -> Image.Image:
    """One product photo, ``size`` x ``size`` RGB."""
    big = size * _SCALE
    bg_level = rng.randint(236, 252)
    canvas = Image.new("RGB", (big, big), (bg_level, bg_level, bg_level))
    jitter = [_shade(base, rng.uniform(0.88, 1.10))]
    fill = _pattern_fill(big, pattern, jitter[0], accent, rng)
    scale = rng.uniform(0.78, 0.92) * (0.72 if child else 1.0)
    ox = (1 - scale) / 2 + rng.uniform(-0.05, 0.05)
    oy = (1 - scale) / 2 + rng.uniform(-0.05, 0.05)

    def px(p: Point) -> Point:
        return ((ox + p[0] * scale) * big, (oy + p[1] * scale) * big)

    mask = Image.new("L", (big, big), 0)
    md = ImageDraw.Draw(mask)
    polys: Sequence[list[Point]] = SHAPES[article](narrow)
    for poly in polys:
        md.polygon([px(p) for p in poly], fill=255)
    canvas.paste(fill, (0, 0), mask)
    d = ImageDraw.Draw(canvas)
    outline = _shade(base, 0.55) if sum(base) > 200 else _shade(base, 1.8)
    for poly in polys:
        d.polygon([px(p) for p in poly], outline=outline, width=_SCALE)
    _details(d, article, px, _shade(base, 0.6) if sum(base) > 120 else (200, 200, 200))
    angle = rng.uniform(-6, 6)
    canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(bg_level,) * 3)
    small = canvas.resize((size, size), Image.Resampling.LANCZOS)
    return small.filter(ImageFilter.SMOOTH) if rng.random() < 0.2 else small
