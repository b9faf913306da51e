"""One-shot ingest of an existing folder (``fashion-search ingest PATH``).

A folder inside the embedded images folder is indexed in place. Any other folder is *copied*
into the blob store first (keys relative to PATH), because the blob store is what the API serves
image URLs from: indexing files the store does not hold would give results that cannot be shown.
In the AWS home the copy is an upload under the ingest prefix and the S3 trigger does the rest.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fashion_search.errors import InvalidInput
from fashion_search.ingest.events import BlobEvent
from fashion_search.ingest.outcome import IngestOutcome, IngestReport, report
from fashion_search.ingest.pipeline import Ingestor
from fashion_search.ingest.triggers.folder import created_event, is_ignored, scan
from fashion_search.ingest.vanished import find_vanished, remove_vanished
from fashion_search.stores.blobs import BlobStore
from fashion_search.types import ItemStatus


@dataclass(slots=True)
class CopyResult:
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def files_under(src: Path) -> Iterator[tuple[Path, str]]:
    """(path, key relative to ``src``) for every non-hidden, non-temporary file."""
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(src)
            if not is_ignored(rel) and path.is_file():
                yield path, rel.as_posix()


def copy_into_store(
    blobs: BlobStore,
    src: Path,
    *,
    prefix: str = "",
    on_progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """Put every file of ``src`` into ``blobs`` under ``prefix``; identical blobs are skipped."""
    if not src.is_dir():
        raise InvalidInput(f"{src} is not a folder", field="path")
    result = CopyResult()
    for path, rel in files_under(src):
        key = prefix + rel
        data = path.read_bytes()
        info = blobs.head(key)
        if (
            info is not None
            and (info.etag or "").strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest()
        ):
            result.unchanged.append(key)
        else:
            blobs.put(key, data, content_type=mimetypes.guess_type(path.name)[0])
            result.copied.append(key)
        if on_progress is not None:
            on_progress(1)
    return result


def ingest_folder(
    ingestor: Ingestor,
    root: Path,
    *,
    under: Path | None = None,
    batch_size: int = 64,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest every file below ``under`` (default ``root``), the embedded images folder."""
    return _run(ingestor, list(scan(root, under)), batch_size, on_progress)


def catch_up(
    ingestor: Ingestor,
    root: Path,
    *,
    batch_size: int = 64,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """What changed in the embedded images folder while nothing watched it: every file is
    ingested (unchanged ones are recognised and skipped), and items whose file is gone are
    removed from the index and the catalog."""
    done = ingest_folder(ingestor, root, batch_size=batch_size, on_progress=on_progress)
    catalog = ingestor.stores.catalog
    items = [*catalog.by_status(ItemStatus.INDEXED), *catalog.by_status(ItemStatus.PENDING)]
    removed = report(
        remove_vanished(
            ingestor, find_vanished(ingestor.stores.blobs, items), batch_size=batch_size
        )
    )
    return IngestReport(
        {status: count + removed.counts[status] for status, count in done.counts.items()},
        done.problems + removed.problems,
    )


def ingest_keys(
    ingestor: Ingestor,
    root: Path,
    keys: Sequence[str],
    *,
    batch_size: int = 64,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest the files at ``keys`` of the embedded images folder ``root``."""
    events = [ev for k in keys if (ev := created_event(root, k)) is not None]
    return _run(ingestor, events, batch_size, on_progress)


def _run(
    ingestor: Ingestor,
    events: list[BlobEvent],
    batch_size: int,
    on_progress: Callable[[int], None] | None,
) -> IngestReport:
    outcomes: list[IngestOutcome] = []
    for start in range(0, len(events), batch_size):
        batch = events[start : start + batch_size]
        outcomes.extend(ingestor.handle(batch))
        if on_progress is not None:
            on_progress(len(batch))
    return report(outcomes)
