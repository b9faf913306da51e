"""A full disk, told apart from other storage errors and said in words an operator can act on.

SQLite reports it as SQLITE_FULL ("database or disk is full"), files as ENOSPC (or EDQUOT, a quota).
The adapters turn either into ``DiskFull`` naming the path, so the CLI, the ingest reasons and the
API all say "the disk is full" instead of what the failed write left behind.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from fashion_search.errors import DiskFull
from fashion_search.settings import ENV_PREFIX

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's SQLITE_FULL and the OS's "no space left" / "quota exceeded"."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)  # the extended code; its low byte is primary
        return code is not None and code & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def _size(n: int) -> str:
    value, unit = float(n), "bytes"
    for bigger in ("KB", "MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


def disk_full_message(path: str | Path | None, exc: BaseException | None = None) -> str:
    """What happened, where, and what to do."""
    where = Path(path).resolve() if path else None
    free = _free_bytes(where) if where is not None else None
    at = f" writing {where}" if where is not None else ""
    left = f" ({_size(free)} free there)" if free is not None else ""
    detail = f" [{exc}]" if exc is not None else ""
    return (
        f"the disk is full{at}{left}{detail}: free some space on that disk (or point "
        f"{ENV_PREFIX}EMBEDDED__DATA_DIR at a folder on a bigger one) and run the command again"
    )


def disk_full(path: str | Path, exc: BaseException) -> DiskFull:
    """The ``DiskFull`` to raise ``from exc``."""
    return DiskFull(disk_full_message(path, exc), field=str(path))
