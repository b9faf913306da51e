"""Durability helpers shared by the on-disk adapters (folder blobs, embedded index)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file's directory entry durable (POSIX: the entry is the
    directory's data, so the directory itself must be fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
