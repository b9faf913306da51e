"""The demo catalog: products drawn procedurally, written in the Kaggle ``styles.csv`` format.

``generate_catalog(out_dir, products=N, seed=S)`` writes ``out_dir/styles.csv`` and
``out_dir/images/{id}.jpg``. A product is a pure function of ``(seed, id)``, so the same seed
gives byte-identical files and a larger ``products`` only appends products.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fashion_search.demo.draw import RGB, draw_product
from fashion_search.errors import InvalidInput

KAGGLE_COLUMNS: tuple[str, ...] = (
    "id", "gender", "masterCategory", "subCategory", "articleType", "baseColour",
    "season", "year", "usage", "productDisplayName",
)  # fmt: skip

# Kaggle baseColour names and a representative sRGB value each.
COLOURS: dict[str, RGB] = {
    "Black": (28, 28, 30),
    "White": (246, 246, 244),
    "Grey": (128, 128, 132),
    "Navy Blue": (24, 34, 92),
    "Blue": (40, 96, 206),
    "Red": (204, 32, 36),
    "Maroon": (112, 22, 38),
    "Pink": (242, 132, 172),
    "Green": (32, 142, 62),
    "Olive": (112, 122, 40),
    "Yellow": (242, 212, 44),
    "Orange": (242, 132, 32),
    "Purple": (112, 52, 152),
    "Brown": (112, 72, 36),
    "Beige": (222, 202, 162),
}
PATTERNS: tuple[str, ...] = ("Plain", "Striped", "Dotted", "Checked")
# Brand words of the Kaggle catalog, for ``brands=True``: words a picture cannot show and only
# a product's name holds (what lexical search is for; docs/search.md).
BRANDS: tuple[str, ...] = (
    "Puma", "Nike", "Adidas", "Wrangler", "Levis", "Reebok", "Fila", "Lotto",
    "Catwalk", "Spykar", "Mango", "Roadster", "Wildcraft", "Fastrack", "Baggit", "Hidesign",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Article:
    article_type: str  # Kaggle articleType
    noun: str  # the word in the display name
    master: str
    sub: str
    genders: tuple[str, ...]
    usages: tuple[str, ...]
    seasons: tuple[str, ...]


ARTICLES: tuple[Article, ...] = (
    Article("Tshirts", "T-shirt", "Apparel", "Topwear", ("Men", "Women", "Boys", "Girls", "Unisex"),
            ("Casual", "Sports"), ("Summer", "Spring")),
    Article("Shirts", "Shirt", "Apparel", "Topwear", ("Men", "Women", "Boys"),
            ("Casual", "Formal"), ("Summer", "Fall")),
    Article("Jackets", "Jacket", "Apparel", "Topwear", ("Men", "Women", "Boys"),
            ("Casual", "Sports"), ("Winter", "Fall")),
    Article("Dresses", "Dress", "Apparel", "Dress", ("Women", "Girls"),
            ("Casual", "Party"), ("Summer", "Spring")),
    Article("Skirts", "Skirt", "Apparel", "Bottomwear", ("Women", "Girls"),
            ("Casual", "Formal"), ("Summer", "Spring")),
    Article("Trousers", "Trousers", "Apparel", "Bottomwear", ("Men", "Women"),
            ("Formal", "Casual"), ("Fall", "Winter")),
    Article("Jeans", "Jeans", "Apparel", "Bottomwear", ("Men", "Women", "Boys", "Girls"),
            ("Casual",), ("Fall", "Winter", "Summer")),
    Article("Shorts", "Shorts", "Apparel", "Bottomwear", ("Men", "Women", "Boys", "Girls"),
            ("Casual", "Sports"), ("Summer",)),
    Article("Casual Shoes", "Sneakers", "Footwear", "Shoes", ("Men", "Women", "Unisex"),
            ("Casual", "Sports"), ("Summer", "Fall")),
    Article("Heels", "Heels", "Footwear", "Shoes", ("Women",), ("Casual", "Party"),
            ("Winter", "Summer")),
    Article("Handbags", "Handbag", "Accessories", "Bags", ("Women",), ("Casual", "Formal"),
            ("Fall", "Summer")),
    Article("Caps", "Cap", "Accessories", "Headwear", ("Men", "Unisex", "Boys"),
            ("Casual", "Sports"), ("Summer",)),
)  # fmt: skip
ARTICLES_BY_TYPE: dict[str, Article] = {a.article_type: a for a in ARTICLES}
FIRST_ID = 10001
DEFAULT_SEED = 7


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    gender: str
    article: Article
    colour: str
    pattern: str
    season: str
    year: int
    usage: str
    brand: str | None = None

    @property
    def display_name(self) -> str:
        """Kaggle-like: "Women Red Striped Dress" ("Puma Women Red Striped Dress" with a
        brand); plain products name no pattern."""
        pattern = "" if self.pattern == "Plain" else f" {self.pattern}"
        brand = f"{self.brand} " if self.brand else ""
        return f"{brand}{self.gender} {self.colour}{pattern} {self.article.noun}"

    def row(self) -> dict[str, str]:
        return {
            "id": str(self.id),
            "gender": self.gender,
            "masterCategory": self.article.master,
            "subCategory": self.article.sub,
            "articleType": self.article.article_type,
            "baseColour": self.colour,
            "season": self.season,
            "year": str(self.year),
            "usage": self.usage,
            "productDisplayName": self.display_name,
        }


def _rng(seed: int, product_id: int) -> random.Random:
    digest = hashlib.sha256(f"fashion-search-demo:{seed}:{product_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def make_product(seed: int, product_id: int, *, brands: bool = False) -> Product:
    """The product ``product_id``; with ``brands`` the very same product under a brand word
    (drawn from its own generator, so nothing else changes)."""
    brand = _rng(seed + 2, product_id).choice(BRANDS) if brands else None
    rng = _rng(seed, product_id)
    article = rng.choice(ARTICLES)
    # Plain is as common as all patterns together, like a real catalogue.
    pattern = "Plain" if rng.random() < 0.4 else rng.choice(PATTERNS[1:])
    return Product(
        id=product_id,
        gender=rng.choice(article.genders),
        article=article,
        colour=rng.choice(list(COLOURS)),
        pattern=pattern,
        season=rng.choice(article.seasons),
        year=rng.randint(2011, 2018),
        usage=rng.choice(article.usages),
        brand=brand,
    )


def iter_products(
    *, products: int, seed: int = DEFAULT_SEED, brands: bool = False
) -> Iterator[Product]:
    if products < 1:
        raise InvalidInput(f"products must be at least 1, got {products}", field="products")
    for i in range(products):
        yield make_product(seed, FIRST_ID + i, brands=brands)


def _accent(colour: str, rng: random.Random) -> RGB:
    base = COLOURS[colour]
    luminance = 0.299 * base[0] + 0.587 * base[1] + 0.114 * base[2]
    options = ("White", "Beige", "Yellow") if luminance < 120 else ("Black", "Navy Blue", "Maroon")
    return COLOURS[rng.choice([o for o in options if o != colour])]


def render_product(product: Product, *, seed: int = DEFAULT_SEED, size: int = 96) -> bytes:
    """The product's JPEG bytes (deterministic)."""
    rng = _rng(seed + 1, product.id)
    image = draw_product(
        rng,
        article=product.article.article_type,
        base=COLOURS[product.colour],
        accent=_accent(product.colour, rng),
        pattern=product.pattern,
        narrow=product.gender in ("Women", "Girls"),
        child=product.gender in ("Boys", "Girls"),
        size=size,
    )
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def pattern_of(display_name: str) -> str:
    """The pattern a demo display name states ("Plain" when it names none)."""
    words = display_name.split()
    return next((p for p in PATTERNS[1:] if p in words), "Plain")


def generate_catalog(
    out_dir: Path,
    *,
    products: int,
    seed: int = DEFAULT_SEED,
    image_size: int = 96,
    brands: bool = False,
) -> Path:
    """Write ``styles.csv`` and ``images/``; returns the CSV path. Existing identical images are
    left untouched (so a re-run does not change their mtimes and nothing is re-ingested)."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for product in iter_products(products=products, seed=seed, brands=brands):
        rows.append(product.row())
        path = images / f"{product.id}.jpg"
        data = render_product(product, seed=seed, size=image_size)
        if not path.exists() or path.read_bytes() != data:
            tmp = path.with_suffix(".jpg.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    csv_path = out_dir / "styles.csv"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=KAGGLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if not csv_path.exists() or csv_path.read_text(encoding="utf-8") != buf.getvalue():
        csv_path.write_text(buf.getvalue(), encoding="utf-8")
    return csv_path
