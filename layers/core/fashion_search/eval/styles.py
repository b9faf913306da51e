"""styles.csv rows with their image files, for evaluation and training.

Parsing (unquoted commas, empty fields, duplicate ids) is the loader's
(``fashion_search.ingest.kaggle.styles``); this adds the image path and drops rows that evaluation
cannot use (no display name, no image), counting why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from fashion_search.errors import InvalidInput
from fashion_search.ingest.kaggle import styles as kaggle
from fashion_search.ingest.kaggle.loader import find_image

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StyleRow:
    id: str
    name: str  # productDisplayName
    tags: dict[str, str]
    image: Path


@dataclass(slots=True)
class StylesFile:
    rows: list[StyleRow]
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def read_styles(csv_path: Path, images_dir: Path, *, limit: int | None = None) -> StylesFile:
    """Usable rows (an id, a display name and an image file) in file order."""
    if not csv_path.is_file():
        raise InvalidInput(f"catalog not found: {csv_path}", field="catalog")
    if not images_dir.is_dir():
        raise InvalidInput(f"images folder not found: {images_dir}", field="images")
    out = StylesFile(rows=[])
    for row in kaggle.read_styles(csv_path):
        if isinstance(row, kaggle.RowProblem):
            out.skip(row.reason.split(" (")[0])
            continue
        if not row.display_name:
            out.skip("no productDisplayName")
            continue
        image = find_image(images_dir, row.id)
        if image is None:
            out.skip("image missing")
            continue
        out.rows.append(StyleRow(id=row.id, name=row.display_name, tags=row.tags, image=image))
        if limit is not None and len(out.rows) >= limit:
            break
    if out.skipped:
        log.info("styles.csv rows skipped: %s", out.skipped)
    return out
