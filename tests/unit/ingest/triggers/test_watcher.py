"""The folder watcher's debounce and filters, driven by hand (no threads, a fake clock)."""

from __future__ import annotations

from fashion_search.ingest import OutcomeStatus
from fashion_search.ingest.triggers.folder import is_ignored
from fashion_search.ingest.triggers.watcher import FolderWatcher

from tests.fixtures.ingest import IngestHome, jpeg_bytes


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_file_is_ingested_only_once_its_size_is_stable(ingest_home: IngestHome) -> None:
    clock = Clock()
    watcher = FolderWatcher(ingest_home.make(), ingest_home.root, settle_s=1.0, clock=clock)
    path = ingest_home.root / "new.jpg"
    data = jpeg_bytes(1)
    path.write_bytes(data[:100])  # a copy in progress
    watcher.changed(path)
    assert watcher.pump() == []
    clock.t = 0.5
    path.write_bytes(data)  # still growing
    assert watcher.pump() == []
    clock.t = 1.0
    assert watcher.pump() == []  # stable for 0.5 s only
    clock.t = 1.6
    (outcome,) = watcher.pump()
    assert outcome.status is OutcomeStatus.INDEXED
    assert ingest_home.embedder.image_calls == [1]  # the partial file was never embedded
    assert watcher.pending() == 0


def test_removal_goes_straight_through(ingest_home: IngestHome) -> None:
    ingestor = ingest_home.make()
    ingestor.handle([ingest_home.put("gone.jpg", jpeg_bytes(2))])
    watcher = FolderWatcher(ingestor, ingest_home.root, settle_s=1.0, clock=Clock())
    path = ingest_home.root / "gone.jpg"
    path.unlink()
    watcher.removed(path)
    (outcome,) = watcher.pump()
    assert outcome.status is OutcomeStatus.DELETED
    assert ingest_home.stores.vectors.count() == 0


def test_file_vanishing_before_it_settles_counts_as_removed(ingest_home: IngestHome) -> None:
    clock = Clock()
    watcher = FolderWatcher(ingest_home.make(), ingest_home.root, settle_s=1.0, clock=clock)
    path = ingest_home.root / "brief.jpg"
    path.write_bytes(jpeg_bytes(3))
    watcher.changed(path)
    watcher.pump()
    path.unlink()
    clock.t = 5
    (outcome,) = watcher.pump()
    assert outcome.status is OutcomeStatus.DELETED
    assert ingest_home.embedder.image_calls == []


def test_hidden_and_temporary_files_are_ignored(ingest_home: IngestHome) -> None:
    watcher = FolderWatcher(ingest_home.make(), ingest_home.root, settle_s=0.0, clock=Clock())
    for name in (".hidden.jpg", "a.jpg.part", "b.jpg.crdownload", "c.tmp", "~$d.jpg", ".x/e.jpg"):
        path = ingest_home.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(4))
        watcher.changed(path)
    assert watcher.pending() == 0
    assert watcher.pump() == []


def test_is_ignored() -> None:
    assert is_ignored(".DS_Store") and is_ignored("tops/.~lock.jpg#") and is_ignored("x.swp")
    assert not is_ignored("tops/red flower é.jpg")


def test_transient_failure_is_retried_on_a_later_pump(ingest_home: IngestHome) -> None:
    clock = Clock()
    watcher = FolderWatcher(ingest_home.make(), ingest_home.root, settle_s=0.0, clock=clock)
    path = ingest_home.root / "r.jpg"
    path.write_bytes(jpeg_bytes(5))
    watcher.changed(path)
    watcher.pump()  # first sighting
    ingest_home.vectors.fail_upserts = 1
    (first,) = watcher.pump()
    assert first.needs_retry and watcher.pending() == 1
    watcher.pump()  # re-sighted
    (second,) = watcher.pump()
    assert second.status is OutcomeStatus.INDEXED


def test_catch_up_notices_files_deleted_while_not_watching(ingest_home: IngestHome) -> None:
    from fashion_search.ingest.triggers.oneshot import catch_up
    from fashion_search.types import ItemStatus

    ingest_home.make().handle([ingest_home.put(f"c{i}.jpg", jpeg_bytes(70 + i)) for i in range(3)])
    # The watcher is not running: one file is deleted, one is added.
    (ingest_home.root / "c0.jpg").unlink()
    (ingest_home.root / "new.jpg").write_bytes(jpeg_bytes(80))

    summary = catch_up(ingest_home.make(), ingest_home.root).counts
    assert summary["deleted"] == 1 and summary["indexed"] == 1
    assert set(ingest_home.stores.vectors.iter_ids()) == {"c1", "c2", "new"}
    gone = ingest_home.stores.catalog.get("c0")
    assert gone is not None and gone.status is ItemStatus.DELETED
