"""Reading a Kaggle "Fashion Product Images" ``styles.csv`` despite its known faults.

The real file has rows whose productDisplayName holds unquoted commas (pandas: "Expected 10
fields ... saw 11"), empty fields, and duplicate ids. Extra fields are rejoined into the display
name (the one free-text column), never dropped; empty fields become absent tags.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fashion_search.errors import InvalidInput
from fashion_search.types import TAG_FIELDS

DISPLAY_COLUMN = "productDisplayName"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclass(frozen=True, slots=True)
class StyleRow:
    id: str
    tags: dict[str, str]
    display_name: str | None
    line: int


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    id: str | None
    reason: str


def _clean(value: str) -> str:
    value = value.strip()
    # "2012.0" appears where a spreadsheet touched the file.
    return value[:-2] if value.endswith(".0") and value[:-2].isdigit() else value


def read_styles(path: Path) -> Iterator[StyleRow | RowProblem]:
    """Rows in file order; a row that cannot be used comes out as a ``RowProblem``."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="styles_csv") from exc
    with handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if "id" not in header:
            raise InvalidInput(f"{path}: no 'id' column in the header", field="styles_csv")
        name_at = header.index(DISPLAY_COLUMN) if DISPLAY_COLUMN in header else None
        seen: dict[str, int] = {}
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            extra = len(fields) - len(header)
            if extra > 0:
                if name_at is None:
                    yield RowProblem(line, None, f"{len(fields)} fields, header has {len(header)}")
                    continue
                # The unquoted commas belong to the display name: put them back.
                joined = ",".join(fields[name_at : name_at + extra + 1])
                fields = fields[:name_at] + [joined] + fields[name_at + extra + 1 :]
            fields = fields + [""] * (len(header) - len(fields))
            row = dict(zip(header, fields, strict=True))
            image_id = row["id"].strip()
            if not _ID.fullmatch(image_id) or ".." in image_id:
                yield RowProblem(line, image_id or None, "missing or invalid id")
                continue
            if image_id in seen:
                yield RowProblem(line, image_id, f"duplicate id (first on line {seen[image_id]})")
                continue
            seen[image_id] = line
            tags = {
                name: _clean(row[name])
                for name in header
                if name not in ("id", DISPLAY_COLUMN) and _clean(row[name])
            }
            display = row.get(DISPLAY_COLUMN, "").strip() or None
            yield StyleRow(image_id, _order(tags), display, line)


def _order(tags: dict[str, str]) -> dict[str, str]:
    known = [k for k in TAG_FIELDS if k in tags]
    return {k: tags[k] for k in known + sorted(set(tags) - set(known))}
