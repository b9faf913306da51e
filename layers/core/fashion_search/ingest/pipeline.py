"""The ingest core: a batch of blob events in, the catalog and the vector index brought in line.

Per batch: claim (idempotency ledger) -> keep the newest event per image -> read every created
blob -> ONE batched model call for all of them -> per record: catalog PENDING (conditional on
the ordering token), batched vector upsert, catalog INDEXED (conditional again). Removes write a
tombstone first, then delete the vector. Every failure is confined to its record and classified:
bad object -> FAILED (kept, never retried); store trouble or a bug -> RETRY (reported).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from fashion_search.errors import InvalidInput, NotFound, StaleEvent
from fashion_search.ingest.events import BlobEvent, EventKind, latest_per_image
from fashion_search.ingest.ledger import Claim, EventLedger
from fashion_search.ingest.metadata import tags_from_user_metadata
from fashion_search.ingest.outcome import IngestOutcome, OutcomeStatus
from fashion_search.ingest.removes import STALE, apply_removes
from fashion_search.ingest.removes import retry_reason as _retry_reason
from fashion_search.ingest.tags import TagPredictor, VocabularyCache
from fashion_search.ingest.writes import Create, catalog_item, write_indexed
from fashion_search.model.base import Embedder
from fashion_search.types import BlobInfo, CatalogItem, ItemStatus

if TYPE_CHECKING:
    from fashion_search.home import Stores
    from fashion_search.settings import Settings

log = logging.getLogger(__name__)
_S, _K = OutcomeStatus, EventKind
ALREADY_INDEXED = "already indexed (same eTag)"


class Ingestor:
    def __init__(
        self,
        stores: Stores,
        embedder: Embedder,
        *,
        settings: Settings,
        ledger: EventLedger | None = None,
        tag_predictor: TagPredictor | None = None,
        vocabulary_ttl_s: float = 300.0,
        upsert_chunk: int = 100,
        read_workers: int = 8,
    ) -> None:
        self._stores = stores
        self._embedder = embedder
        self._max_bytes = settings.limits.max_blob_bytes
        self.ledger = ledger
        self._predictor = tag_predictor or TagPredictor(embedder)
        self._vocabulary = VocabularyCache(stores.catalog.tag_values, ttl_s=vocabulary_ttl_s)
        self._upsert_chunk = upsert_chunk
        self._read_workers = read_workers
        # Per-batch state; ``handle`` runs one batch at a time (the lock), as Lambda and the
        # watcher's single worker thread do anyway.
        self._lock = threading.Lock()
        self._out: dict[int, IngestOutcome] = {}
        self._unclaimed: set[int] = set()

    @property
    def stores(self) -> Stores:
        return self._stores

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def handle(self, events: Sequence[BlobEvent]) -> list[IngestOutcome]:
        """Apply a batch of events; one outcome per event, in input order."""
        with self._lock:
            self._out, self._unclaimed = {}, set()
            return self._handle(events)

    def _handle(self, events: Sequence[BlobEvent]) -> list[IngestOutcome]:
        prefix = self._stores.ingest_prefix
        live: list[tuple[int, BlobEvent]] = []
        for i, ev in enumerate(events):
            if prefix and not ev.key.startswith(prefix):
                self._done(i, ev, _S.SKIPPED, f"outside the ingest prefix {prefix!r}")
            elif (claim := self._claim(i, ev)) is Claim.NEW:
                live.append((i, ev))
            elif claim is Claim.DONE:
                self._done(i, ev, _S.SKIPPED, "duplicate: idempotency record", claimed=False)
        ordered, superseded = latest_per_image(live, prefix)
        for i, ev in superseded:
            self._done(i, ev, _S.SKIPPED, "superseded by a newer event in the batch")
        try:
            stored = self._stores.catalog.get_many([ev.image_id(prefix) for _, ev in ordered])
        except Exception as exc:
            log.warning("catalog read failed for the batch: %s", _retry_reason(exc))
            for i, ev in ordered:
                self._done(i, ev, _S.RETRY, _retry_reason(exc))
            stored = {}
            ordered = []
        removes = [(i, ev) for i, ev in ordered if ev.kind is _K.REMOVED]
        apply_removes(self._stores, removes, stored, self._done)
        self._creates([(i, ev) for i, ev in ordered if ev.kind is _K.CREATED], stored)
        outcomes = [self._out[i] for i in range(len(events))]
        self._settle_ledger(outcomes)
        return outcomes

    # -- bookkeeping -------------------------------------------------------------------------

    def _claim(self, i: int, ev: BlobEvent) -> Claim:
        if self.ledger is None:
            return Claim.NEW
        try:
            claim = self.ledger.claim(ev)
        except Exception as exc:
            self._done(i, ev, _S.RETRY, "idempotency store: " + _retry_reason(exc), claimed=False)
            return Claim.BUSY
        if claim is Claim.BUSY:
            self._done(i, ev, _S.RETRY, "being processed by another worker", claimed=False)
        return claim

    def _done(
        self,
        i: int,
        ev: BlobEvent,
        status: OutcomeStatus,
        reason: str | None = None,
        *,
        claimed: bool = True,
    ) -> None:
        image_id = ev.image_id(self._stores.ingest_prefix)
        outcome = IngestOutcome(ev, image_id, status, reason)
        self._out[i] = outcome
        if not claimed:
            self._unclaimed.add(i)
        level = logging.WARNING if status in (_S.RETRY, _S.FAILED) else logging.INFO
        log.log(
            level,
            "ingest %s %s: %s%s",  # the key and the reason too, for a plain-text log
            ev.kind.value,
            status.value,
            ev.key,
            f" ({reason})" if reason else "",
            extra={"image_id": image_id, "key": ev.key, "status": status.value, "reason": reason},
        )

    def _settle_ledger(self, outcomes: list[IngestOutcome]) -> None:
        if self.ledger is None:
            return
        for i, o in enumerate(outcomes):
            if i in self._unclaimed:
                continue
            try:
                if o.needs_retry:
                    self.ledger.release(o.event)
                else:
                    self.ledger.complete(o.event)
            except Exception as exc:  # the catalog already holds the truth; log and go on
                log.warning(
                    "idempotency record not updated: %s",
                    _retry_reason(exc),
                    extra={"image_id": o.image_id},
                )

    # -- creates -----------------------------------------------------------------------------

    def _creates(
        self, creates: list[tuple[int, BlobEvent]], stored: dict[str, CatalogItem]
    ) -> None:
        pending: list[Create] = []
        for i, ev in creates:
            iid = ev.image_id(self._stores.ingest_prefix)
            c = Create(index=i, event=ev, image_id=iid, stored=stored.get(iid))
            skip = self._replay_or_stale(c)
            if skip:
                self._done(i, ev, _S.SKIPPED, skip)
            else:
                pending.append(c)
        with ThreadPoolExecutor(max_workers=max(1, self._read_workers)) as pool:
            read = list(pool.map(self._read, pending))
        for c in pending:
            if c.fail_reason is not None:  # store writes stay on this thread
                self._fail(c, c.fail_reason)
        ready = [c for c, ok in zip(pending, read, strict=True) if ok]
        self._embed(ready)
        self._write([c for c in ready if c.vector is not None])

    def _replay_or_stale(self, c: Create) -> str | None:
        cur, ev = c.stored, c.event
        if cur is None:
            return None
        if cur.ordering_token > ev.ordering_token:
            return STALE
        if cur.ordering_token < ev.ordering_token:
            return None
        same_object = ev.etag is None or cur.etag is None or cur.etag == ev.etag
        if cur.status is ItemStatus.DELETED:
            return "stale: the image was deleted by an event with the same order"
        if cur.status is ItemStatus.INDEXED and same_object:
            if cur.model_id == self._embedder.model_id:
                return "duplicate: already indexed"
        if cur.status is ItemStatus.FAILED and same_object and ev.ordering_token:
            return f"duplicate: already failed ({cur.reason})"
        return None

    def _already_indexed(self, cur: CatalogItem | None, info: BlobInfo) -> bool:
        """The catalog holds this very object (same eTag) indexed by this model, with the tags
        its metadata carries: what ``migrate`` leaves behind. Nothing to read or write."""
        if (
            cur is None
            or cur.status is not ItemStatus.INDEXED
            or not info.etag
            or cur.etag != info.etag
            or cur.embedding is None
            or cur.model_id != self._embedder.model_id
        ):
            return False
        tags, display_name = tags_from_user_metadata(info.metadata)
        # Metadata tags would replace the stored ones (and clear tags_predicted).
        if tags and (tags != cur.tags or cur.tags_predicted):
            return False
        return display_name is None or display_name == cur.display_name

    def _read(self, c: Create) -> bool:
        """Fetch bytes and tags (in a worker thread). False when the record goes no further:
        gone or retry (outcome recorded) or bad (``fail_reason`` set, recorded by the caller)."""
        ev, blobs = c.event, self._stores.blobs
        try:
            info = blobs.head(ev.key)
            if info is None:
                raise NotFound(f"{ev.key} is gone")
            if self._already_indexed(c.stored, info):
                self._done(c.index, ev, _S.SKIPPED, ALREADY_INDEXED)
                return False
            c.data = blobs.get(ev.key, max_bytes=self._max_bytes)
        except NotFound:
            # Removed after the event was sent; its own remove event follows.
            self._done(c.index, ev, _S.SKIPPED, "object no longer exists")
            return False
        except InvalidInput as exc:  # over the byte cap
            c.fail_reason = exc.message
            return False
        except Exception as exc:
            self._done(c.index, ev, _S.RETRY, "read: " + _retry_reason(exc))
            return False
        c.etag = ev.etag or info.etag
        c.content_hash = hashlib.sha256(c.data).hexdigest()
        if not c.data:
            c.fail_reason = "empty object (0 bytes)"
            return False
        c.tags, c.display_name = tags_from_user_metadata(info.metadata)
        cur = c.stored
        if not c.tags and cur is not None and cur.tags:  # written earlier by the loader
            c.tags, c.tags_predicted = dict(cur.tags), cur.tags_predicted
        if c.display_name is None and cur is not None:
            c.display_name = cur.display_name
        if (
            cur is not None
            and cur.content_hash == c.content_hash
            and cur.embedding is not None
            and cur.model_id == self._embedder.model_id
        ):
            c.vector = cur.embedding  # same bytes, same model: no need to run the model
        return True

    def _embed(self, ready: list[Create]) -> None:
        todo = [c for c in ready if c.vector is None]
        if todo:
            try:
                result = self._embedder.embed_images([c.data for c in todo])
            except Exception as exc:
                for c in todo:
                    self._done(c.index, c.event, _S.RETRY, "embed: " + _retry_reason(exc))
                    c.data = b""
                return
            for n, c in enumerate(todo):
                if result.ok(n):
                    c.vector = result.vectors[n]
                else:
                    self._fail(c, result.errors[n].message)
        for c in ready:
            c.data = b""  # bytes are no longer needed; free them before the writes
        untagged = [c for c in ready if c.vector is not None and not c.tags]
        if untagged:
            try:
                vectors = np.stack([c.vector for c in untagged if c.vector is not None])
                predicted = self._predictor.predict(vectors, self._vocabulary.get())
            except Exception as exc:  # tags are a nicety: index without them
                log.warning("tag prediction failed: %s", _retry_reason(exc))
                predicted = [{} for _ in untagged]
            for c, tags in zip(untagged, predicted, strict=True):
                c.tags, c.tags_predicted = tags, bool(tags)
        self._embed_names([c for c in ready if c.vector is not None])

    def _embed_names(self, ready: list[Create]) -> None:
        """The display names' text vectors: the text half of each product document
        (``ingest.documents``). A name already embedded by this model is not embedded again;
        a failure indexes the image alone rather than holding the product back."""
        todo: list[Create] = []
        for c in ready:
            cur = c.stored
            if c.display_name is None or not c.display_name.strip():
                continue
            if (
                cur is not None
                and cur.text_embedding is not None
                and cur.display_name == c.display_name
                and cur.model_id == self._embedder.model_id
            ):
                c.text_vector = cur.text_embedding
            else:
                todo.append(c)
        if not todo:
            return
        try:
            vectors = self._embedder.embed_texts([c.display_name or "" for c in todo])
        except Exception as exc:
            log.warning("display-name embedding failed: %s", _retry_reason(exc))
            return
        for c, vector in zip(todo, vectors, strict=True):
            c.text_vector = vector

    def _fail(self, c: Create, reason: str) -> None:
        c.vector = None
        try:
            self._stores.catalog.put_if_newer(
                catalog_item(c, ItemStatus.FAILED, model_id=None, reason=reason)
            )
            if c.stored is not None and c.stored.status is ItemStatus.INDEXED:
                # The key now holds a bad object: the old picture must stop matching.
                self._stores.vectors.delete([c.image_id], namespace=self._stores.namespace)
        except StaleEvent:
            self._done(c.index, c.event, _S.SKIPPED, STALE)
            return
        except Exception as exc:
            self._done(c.index, c.event, _S.RETRY, _retry_reason(exc))
            return
        self._done(c.index, c.event, _S.FAILED, reason)

    def _write(self, ready: list[Create]) -> None:
        write_indexed(
            self._stores,
            ready,
            model_id=self._embedder.model_id,
            upsert_chunk=self._upsert_chunk,
            done=self._done,
        )
