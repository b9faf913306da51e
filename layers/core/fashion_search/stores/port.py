"""What every store port shares: ``close()`` and use as a context manager."""

from __future__ import annotations

from abc import ABC
from typing import Self


class Closeable:
    """``close()`` and ``with``: the ports, the home's ``Stores`` and the ``Runtime`` that holds
    them all release their files the same way."""

    def close(self) -> None:
        """Release connections and files; the object is not used afterwards."""
        return None  # an object that holds nothing has nothing to release

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Port(Closeable, ABC):  # noqa: B024 (no abstract method of its own: each port declares its own)
    """Base of ``VectorIndex``, ``Catalog`` and ``BlobStore``."""
