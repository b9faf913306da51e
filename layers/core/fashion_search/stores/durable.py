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


def sweep_temporaries(directory: Path, pattern: str) -> None:
    """Remove ``<name>.<pid>.<thread>.tmp`` files matching ``pattern`` whose writer process has
    died (kill -9, power loss): nobody will finish or rename them."""
    for tmp in directory.glob(pattern):
        try:
            os.kill(int(tmp.name.split(".")[-3]), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError):  # not our name, or another user's live process
            continue
