"""The folder watcher with real filesystem notifications (watchdog), in a thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from fashion_search.ingest.triggers.watcher import FolderWatcher
from fashion_search.types import ItemStatus

from tests.fixtures.ingest import IngestHome, jpeg_bytes


def wait_for(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def watching(ingest_home: IngestHome) -> Iterator[IngestHome]:
    # Generous settle time: under a loaded CI machine the writer thread may stall between
    # pieces, and a stall longer than settle_s would look like a finished file.
    watcher = FolderWatcher(ingest_home.make(), ingest_home.root, settle_s=1.0)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), kwargs={"poll_s": 0.05})
    thread.start()
    time.sleep(0.3)  # let the observer arm its watches
    try:
        yield ingest_home
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_dropped_file_becomes_searchable_and_deleting_it_removes_it(watching: IngestHome) -> None:
    catalog = watching.stores.catalog
    (watching.root / "tops").mkdir()
    # Written the way a careful copier does: temp name, then an atomic rename.
    tmp = watching.root / "tops" / "shirt.jpg.part"
    tmp.write_bytes(jpeg_bytes(1))
    os.replace(tmp, watching.root / "tops" / "shirt.jpg")
    (watching.root / ".DS_Store").write_bytes(b"junk")

    def indexed() -> bool:
        item = catalog.get("tops/shirt")
        return item is not None and item.status is ItemStatus.INDEXED

    wait_for(indexed)
    assert watching.stores.vectors.count() == 1
    assert catalog.count() == 1  # neither the temp name nor the hidden file

    (watching.root / "tops" / "shirt.jpg").unlink()

    def deleted() -> bool:
        item = catalog.get("tops/shirt")
        return item is not None and item.status is ItemStatus.DELETED

    wait_for(deleted)
    assert watching.stores.vectors.count() == 0


def test_file_written_in_pieces_is_embedded_once_complete(watching: IngestHome) -> None:
    data = jpeg_bytes(2, size=128)
    path = watching.root / "slow.jpg"
    with path.open("wb") as f:
        for start in range(0, len(data), 500):
            f.write(data[start : start + 500])
            f.flush()
            time.sleep(0.02)

    def done() -> bool:
        item = watching.stores.catalog.get("slow")
        return item is not None and item.status is not ItemStatus.PENDING

    wait_for(done)
    item = watching.stores.catalog.get("slow")
    assert item is not None and item.status is ItemStatus.INDEXED
    assert watching.embedder.image_calls == [1]  # never a half-written file
