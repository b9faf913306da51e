"""The embedded home's trigger side: files in the images folder as blob events.

Keys are paths relative to the folder (POSIX separators); the ordering token of a file is its
mtime in ns, of a removal the time it was noticed. Hidden and temporary files are ignored, so an
editor's swap file or a browser's ``.crdownload`` never becomes an image.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from fashion_search.ingest.events import BlobEvent, folder_created, folder_removed

TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".swp", "~")


def is_ignored(rel: Path | str) -> bool:
    """Hidden (any component starting with ".") or temporary files."""
    parts = Path(rel).parts
    if not parts:
        return True
    if any(p.startswith(".") for p in parts):
        return True
    name = parts[-1].lower()
    return name.startswith("~$") or name.endswith(TEMP_SUFFIXES)


def key_for(root: Path, path: Path) -> str | None:
    """The blob key of ``path`` under ``root``, or None outside it or ignored."""
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return None if is_ignored(rel) else rel.as_posix()


def created_event(root: Path, key: str) -> BlobEvent | None:
    """A created event for the file at ``key``; None if it is gone or not a regular file."""
    try:
        st = (root / key).stat()
    except OSError:
        return None
    if not os.path.isfile(root / key):
        return None
    return folder_created(key, mtime_ns=st.st_mtime_ns, size=st.st_size)


def removed_event(key: str) -> BlobEvent:
    return folder_removed(key, observed_ns=time.time_ns())


def scan(root: Path, under: Path | None = None) -> Iterator[BlobEvent]:
    """Created events for every file below ``under`` (default: the whole folder), sorted."""
    base = (under or root).resolve()
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            key = key_for(root, Path(dirpath) / name)
            if key is not None and (ev := created_event(root, key)) is not None:
                yield ev
