"""``fashion-search load``: a Kaggle-format catalog (styles.csv + images/) into either home.

For each usable row: the catalog row is written first (status PENDING, ordering token "", the
lowest, so any real event supersedes it), then the image is uploaded under the ingest prefix
with its tags as user metadata. The upload is what triggers ingest (S3 notification, or the
folder watcher); writing the row first means ingest always finds the tags, even if it runs
before this loader moves on. Re-running uploads nothing whose bytes and metadata are already
there (eTag = MD5 of a single-part upload) and never rewrites a row ingest has taken over.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fashion_search.ingest.kaggle.styles import RowProblem, StyleRow, read_styles
from fashion_search.ingest.metadata import tags_to_user_metadata
from fashion_search.stores.blobs import BlobStore
from fashion_search.stores.catalog import Catalog
from fashion_search.types import CatalogItem, ItemStatus

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_EXAMPLES = 5


@dataclass(slots=True)
class LoadSummary:
    loaded: int = 0  # uploaded (new or changed)
    unchanged: int = 0  # already there, same bytes and metadata
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows
    failed: Counter[str] = field(default_factory=Counter)  # reason -> rows
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first ids/lines
    keys: list[str] = field(default_factory=list)  # blob keys of loaded + unchanged rows

    def note(self, bucket: Counter[str], reason: str, example: str) -> None:
        bucket[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < _EXAMPLES:
            shown.append(example)

    def as_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "unchanged": self.unchanged,
            "skipped": dict(self.skipped),
            "failed": dict(self.failed),
            "examples": self.examples,
        }


def find_image(images_dir: Path, image_id: str) -> Path | None:
    """The image of a styles.csv row: ``{id}.jpg`` (or .jpeg/.png/.webp) in ``images_dir``."""
    for suffix in IMAGE_SUFFIXES:
        path = images_dir / f"{image_id}{suffix}"
        if path.is_file():
            return path
    return None


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return f"upload failed: {message or type(exc).__name__}"


class LoadTarget(Protocol):
    """Where a catalog is loaded: ``home.Stores``, or ``home.UploadStores`` in AWS."""

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def ingest_prefix(self) -> str: ...


class CatalogLoader:
    def __init__(
        self,
        stores: LoadTarget,
        *,
        workers: int = 8,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self._stores = stores
        self._workers = max(1, workers)
        self._on_progress = on_progress or (lambda n: None)

    def rows(
        self, styles_csv: Path, *, limit: int | None = None
    ) -> Iterator[StyleRow | RowProblem]:
        """Rows and problems; ``limit`` counts usable rows."""
        used = 0
        for row in read_styles(styles_csv):
            if isinstance(row, StyleRow):
                if limit is not None and used >= limit:
                    return
                used += 1
            yield row

    def load(
        self, styles_csv: Path, images_dir: Path, *, limit: int | None = None, chunk: int = 256
    ) -> LoadSummary:
        summary = LoadSummary()
        batch: list[StyleRow] = []
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="load") as pool:
            for row in self.rows(styles_csv, limit=limit):
                if isinstance(row, RowProblem):
                    summary.note(summary.skipped, row.reason, f"line {row.line}")
                    self._on_progress(1)
                    continue
                batch.append(row)
                if len(batch) >= chunk:
                    self._load_chunk(pool, batch, images_dir, summary)
                    batch = []
            if batch:
                self._load_chunk(pool, batch, images_dir, summary)
        log.info("catalog load finished", extra={"summary": summary.as_dict()})
        return summary

    def _load_chunk(
        self,
        pool: ThreadPoolExecutor,
        rows: Sequence[StyleRow],
        images_dir: Path,
        summary: LoadSummary,
    ) -> None:
        prefix = self._stores.ingest_prefix
        found: list[tuple[StyleRow, Path, str]] = []
        for row in rows:
            path = find_image(images_dir, row.id)
            if path is None:
                summary.note(summary.failed, "image missing", row.id)
                self._on_progress(1)
            else:
                found.append((row, path, f"{prefix}{row.id}{path.suffix.lower()}"))
        existing = self._stores.catalog.get_many([r.id for r, _, _ in found])
        # Row and upload run together on the workers (both adapters are thread-safe): from a
        # laptop every DynamoDB write is a round trip to the region, and 44k of them one after
        # another would take longer than the uploads themselves.
        results = pool.map(
            lambda f: self._row_and_upload(f[0], f[1], f[2], existing.get(f[0].id)), found
        )
        for (row, _, key), result in zip(found, results, strict=True):
            if result == "loaded":
                summary.loaded += 1
                summary.keys.append(key)
            elif result == "unchanged":
                summary.unchanged += 1
                summary.keys.append(key)
            else:
                summary.note(summary.failed, result, row.id)
            self._on_progress(1)

    def _row_and_upload(self, row: StyleRow, path: Path, key: str, cur: CatalogItem | None) -> str:
        # Only a row nobody has taken over yet is (re)written: never reset an item that
        # ingest indexed, failed or tombstoned. The row goes first, so ingest always finds
        # the tags, even if it runs before this loader moves on.
        if cur is None or (cur.status is ItemStatus.PENDING and cur.ordering_token == ""):
            try:
                self._stores.catalog.put(
                    CatalogItem(
                        image_id=row.id,
                        key=key,
                        status=ItemStatus.PENDING,
                        tags=row.tags,
                        display_name=row.display_name,
                        ordering_token="",
                    )
                )
            except Exception as exc:
                reason = f"catalog write failed: {getattr(exc, 'message', None) or exc}"
                log.warning("catalog write failed", extra={"image_id": row.id})
                return reason
        return self._upload(row, path, key)

    def _upload(self, row: StyleRow, path: Path, key: str) -> str:
        blobs = self._stores.blobs
        try:
            data = path.read_bytes()
            metadata = tags_to_user_metadata(row.tags, row.display_name)
            info = blobs.head(key)
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if (
                info is not None
                and (info.etag or "").strip('"') == md5
                and info.metadata == metadata
            ):
                return "unchanged"
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            blobs.put(key, data, content_type=content_type, metadata=metadata)
            return "loaded"
        except Exception as exc:
            log.warning(
                "upload of %s failed: %s",
                row.id,
                _reason(exc),
                extra={"image_id": row.id, "reason": _reason(exc)},
            )
            return _reason(exc)
