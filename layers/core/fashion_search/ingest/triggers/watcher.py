"""Watch the embedded images folder and feed changes to the same ingest core as S3 events.

A file is ingested only once its size and mtime have stayed the same for ``settle_s`` (a copy
in progress is not an image yet); removals go straight through. watchdog delivers the raw
notifications; ``pump`` turns the settled ones into one batch for ``Ingestor.handle``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer

from fashion_search.ingest.events import BlobEvent, EventKind
from fashion_search.ingest.outcome import IngestOutcome
from fashion_search.ingest.pipeline import Ingestor
from fashion_search.ingest.triggers.folder import created_event, key_for, removed_event

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Seen:
    size: int
    mtime_ns: int
    stable_since: float


class FolderWatcher:
    def __init__(
        self,
        ingestor: Ingestor,
        root: Path,
        *,
        settle_s: float = 1.0,
        batch_size: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ingestor = ingestor
        self._root = root
        self._settle_s = settle_s
        self._batch_size = batch_size
        self._clock = clock
        self._lock = threading.Lock()
        self._changed: dict[str, _Seen | None] = {}
        self._removed: set[str] = set()

    # -- notifications (watchdog's thread) ---------------------------------------------------

    def changed(self, path: Path) -> None:
        key = key_for(self._root, path)
        if key is not None:
            with self._lock:
                self._removed.discard(key)
                self._changed.setdefault(key, None)

    def removed(self, path: Path) -> None:
        key = key_for(self._root, path)
        if key is not None:
            with self._lock:
                self._changed.pop(key, None)
                self._removed.add(key)

    # -- work (the caller's thread) ----------------------------------------------------------

    def pending(self) -> int:
        with self._lock:
            return len(self._changed) + len(self._removed)

    def pump(self) -> list[IngestOutcome]:
        """Ingest every removal and every settled file; the rest wait for the next pump."""
        now = self._clock()
        events: list[BlobEvent] = []
        with self._lock:
            removed, self._removed = sorted(self._removed), set()
            events.extend(removed_event(k) for k in removed)
            for key, seen in list(self._changed.items()):
                ev = created_event(self._root, key)
                if ev is None:  # vanished before settling: removal is what happened
                    del self._changed[key]
                    events.append(removed_event(key))
                    continue
                size = ev.size or 0
                mtime_ns = int(ev.ordering_token, 16)
                if seen is None or (seen.size, seen.mtime_ns) != (size, mtime_ns):
                    self._changed[key] = _Seen(size, mtime_ns, now)
                elif now - seen.stable_since >= self._settle_s:
                    del self._changed[key]
                    events.append(ev)
        outcomes: list[IngestOutcome] = []
        for start in range(0, len(events), self._batch_size):
            outcomes.extend(self._ingestor.handle(events[start : start + self._batch_size]))
        for o in outcomes:
            if o.needs_retry:  # try again on a later pump
                path = self._root / o.event.key
                if o.event.kind is EventKind.CREATED:
                    self.changed(path)
                else:
                    self.removed(path)
        return outcomes

    def run(
        self,
        stop: threading.Event,
        *,
        on_batch: Callable[[list[IngestOutcome]], None] | None = None,
        poll_s: float | None = None,
    ) -> None:
        """Watch until ``stop`` is set. ``on_batch`` sees each non-empty batch of outcomes."""
        observer = Observer()
        observer.schedule(_Handler(self), str(self._root), recursive=True)
        observer.start()
        try:
            interval = poll_s if poll_s is not None else max(0.05, self._settle_s / 2)
            while not stop.wait(interval):
                outcomes = self.pump()
                if outcomes and on_batch is not None:
                    on_batch(outcomes)
        finally:
            observer.stop()
            observer.join(timeout=5)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self._w = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        src = Path(str(event.src_path))
        if isinstance(event, FileSystemMovedEvent):
            self._w.removed(src)
            self._w.changed(Path(str(event.dest_path)))
        elif event.event_type == "deleted":
            self._w.removed(src)
        elif event.event_type in ("created", "modified", "closed"):
            self._w.changed(src)
