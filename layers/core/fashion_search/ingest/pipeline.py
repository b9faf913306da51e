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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from fashion_search.errors import InvalidInput, NotFound
from fashion_search.ingest.batch import IngestBatch, Verdict, error_detail
from fashion_search.ingest.events import BlobEvent, EventKind, latest_per_image
from fashion_search.ingest.ledger import Claim, EventLedger
from fashion_search.ingest.metadata import tags_from_user_metadata
from fashion_search.ingest.outcome import IngestOutcome, OutcomeReason, OutcomeStatus
from fashion_search.ingest.removes import apply_removes
from fashion_search.ingest.tags import TagPredictor, VocabularyCache
from fashion_search.ingest.writes import Create, catalog_item, put_if_newer, write_indexed
from fashion_search.model.base import Embedder
from fashion_search.types import BlobInfo, CatalogItem, ItemStatus

if TYPE_CHECKING:
    from fashion_search.home import Stores
    from fashion_search.settings import Settings

log = logging.getLogger(__name__)
_S, _K, _R = OutcomeStatus, EventKind, OutcomeReason


class Ingestor:
    """The one ingest core. It holds what outlives a batch (stores, model, ledger, caches); each
    ``handle`` call carries its own ``IngestBatch`` through the stages, so batches handled at once
    from several threads keep their outcomes apart (the stores and the model are thread-safe, and
    the catalog's conditional writes order two events for one image, as between two Lambdas)."""

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

    @property
    def stores(self) -> Stores:
        return self._stores

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def handle(self, events: Sequence[BlobEvent]) -> list[IngestOutcome]:
        """Apply a batch of events; one outcome per event, in input order."""
        batch = IngestBatch(events, self._stores.ingest_prefix)
        ordered, superseded = latest_per_image(self._admit(batch), batch.prefix)
        for i, _ in superseded:
            batch.skipped(i, _R.SUPERSEDED)
        stored = self._stored(batch, ordered)
        if stored is not None:
            removes = [(i, ev) for i, ev in ordered if ev.kind is _K.REMOVED]
            apply_removes(self._stores, batch, removes, stored)
            self._creates(batch, [(i, ev) for i, ev in ordered if ev.kind is _K.CREATED], stored)
        outcomes = batch.outcomes()
        self._settle_ledger(batch)
        return outcomes

    # -- admission and the ledger ------------------------------------------------------------

    def _admit(self, batch: IngestBatch) -> list[tuple[int, BlobEvent]]:
        """The events to work on: inside the ingest prefix and newly claimed in the ledger."""
        live: list[tuple[int, BlobEvent]] = []
        for i, ev in enumerate(batch.events):
            if batch.prefix and not ev.key.startswith(batch.prefix):
                batch.skipped(i, _R.OUTSIDE_PREFIX, repr(batch.prefix))
            elif self._claim(batch, i, ev) is Claim.NEW:
                live.append((i, ev))
        return live

    def _claim(self, batch: IngestBatch, i: int, ev: BlobEvent) -> Claim:
        if self.ledger is None:
            return Claim.NEW
        try:
            claim = self.ledger.claim(ev)
        except Exception as exc:
            batch.retry(i, _R.LEDGER_ERROR, error_detail(exc))
            return Claim.BUSY
        if claim is Claim.BUSY:
            batch.retry(i, _R.LEDGER_BUSY)
        elif claim is Claim.DONE:
            batch.skipped(i, _R.LEDGER_DONE)
        return claim

    def _settle_ledger(self, batch: IngestBatch) -> None:
        if self.ledger is None:
            return
        for o in batch.claimed():
            try:
                if o.needs_retry:
                    self.ledger.release(o.event)
                else:
                    self.ledger.complete(o.event)
            except Exception as exc:  # the catalog already holds the truth; log and go on
                log.warning(
                    "idempotency record not updated: %s",
                    error_detail(exc),
                    extra={"image_id": o.image_id},
                )

    def _stored(
        self, batch: IngestBatch, ordered: list[tuple[int, BlobEvent]]
    ) -> dict[str, CatalogItem] | None:
        """One catalog read for the whole batch; None (every event left to retry) if it fails."""
        try:
            return self._stores.catalog.get_many([batch.image_id(ev) for _, ev in ordered])
        except Exception as exc:
            log.warning("catalog read failed for the batch: %s", error_detail(exc))
            for i, _ in ordered:
                batch.retry(i, _R.CATALOG_READ, error_detail(exc))
            return None

    # -- creates -----------------------------------------------------------------------------

    def _creates(
        self,
        batch: IngestBatch,
        creates: list[tuple[int, BlobEvent]],
        stored: dict[str, CatalogItem],
    ) -> None:
        pending: list[Create] = []
        for i, ev in creates:
            iid = batch.image_id(ev)
            c = Create(index=i, event=ev, image_id=iid, stored=stored.get(iid))
            skip = self._replay_or_stale(c)
            if skip is not None:
                batch.record(i, skip)
            else:
                pending.append(c)
        with ThreadPoolExecutor(max_workers=max(1, self._read_workers)) as pool:
            verdicts = list(pool.map(self._read, pending))
        ready: list[Create] = []
        # Outcomes and store writes stay on this thread; the workers only read.
        for c, verdict in zip(pending, verdicts, strict=True):
            if verdict is None:
                ready.append(c)
            elif verdict.status is _S.FAILED:
                self._fail(batch, c, verdict.code, verdict.detail)
            else:
                batch.record(c.index, verdict)
        self._embed(batch, ready)
        self._write(batch, [c for c in ready if c.vector is not None])

    def _replay_or_stale(self, c: Create) -> Verdict | None:
        cur, ev = c.stored, c.event
        if cur is None:
            return None
        if cur.ordering_token > ev.ordering_token:
            return Verdict(_S.SKIPPED, _R.STALE)
        if cur.ordering_token < ev.ordering_token:
            return None
        same_object = ev.etag is None or cur.etag is None or cur.etag == ev.etag
        if cur.status is ItemStatus.DELETED:
            return Verdict(_S.SKIPPED, _R.DELETED_SAME_ORDER)
        if cur.status is ItemStatus.INDEXED and same_object:
            if cur.model_id == self._embedder.model_id:
                return Verdict(_S.SKIPPED, _R.ALREADY_INDEXED)
        if cur.status is ItemStatus.FAILED and same_object and ev.ordering_token:
            # The stored text is shown as it is: rows written before reason codes read alike.
            return Verdict(_S.SKIPPED, _R.ALREADY_FAILED, cur.reason)
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

    def _read(self, c: Create) -> Verdict | None:
        """Fetch bytes and tags (in a worker thread). None: ready to embed; otherwise why the
        record goes no further (gone, bad, or to retry), for the caller to record."""
        ev, blobs = c.event, self._stores.blobs
        try:
            info = blobs.head(ev.key)
            if info is None:
                raise NotFound(f"{ev.key} is gone")
            if self._already_indexed(c.stored, info):
                return Verdict(_S.SKIPPED, _R.SAME_OBJECT_INDEXED)
            c.data = blobs.get(ev.key, max_bytes=self._max_bytes)
        except NotFound:
            # Removed after the event was sent; its own remove event follows.
            return Verdict(_S.SKIPPED, _R.OBJECT_GONE)
        except InvalidInput as exc:  # over the byte cap
            return Verdict(_S.FAILED, _R.TOO_LARGE, exc.message)
        except Exception as exc:
            return Verdict(_S.RETRY, _R.BLOB_READ, error_detail(exc))
        c.etag = ev.etag or info.etag
        c.content_hash = hashlib.sha256(c.data).hexdigest()
        if not c.data:
            return Verdict(_S.FAILED, _R.EMPTY_OBJECT)
        self._carry_over(c, info)
        return None

    def _carry_over(self, c: Create, info: BlobInfo) -> None:
        """Tags and display name from the object's metadata, else from the stored item; its
        stored vector when the bytes and the model are the same (no need to run the model)."""
        c.tags, c.display_name = tags_from_user_metadata(info.metadata)
        cur = c.stored
        if cur is None:
            return
        if not c.tags and cur.tags:  # written earlier by the loader
            c.tags, c.tags_predicted = dict(cur.tags), cur.tags_predicted
        if c.display_name is None:
            c.display_name = cur.display_name
        if (
            cur.content_hash == c.content_hash
            and cur.embedding is not None
            and cur.model_id == self._embedder.model_id
        ):
            c.vector = cur.embedding

    def _embed(self, batch: IngestBatch, ready: list[Create]) -> None:
        todo = [c for c in ready if c.vector is None]
        if todo:
            try:
                result = self._embedder.embed_images([c.data for c in todo])
            except Exception as exc:
                for c in todo:
                    batch.retry(c.index, _R.EMBED, error_detail(exc))
                    c.data = b""
                return
            for n, c in enumerate(todo):
                if result.ok(n):
                    c.vector = result.vectors[n]
                else:
                    self._fail(batch, c, _R.BAD_IMAGE, result.errors[n].message)
        for c in ready:
            c.data = b""  # bytes are no longer needed; free them before the writes
        self._predict_tags([c for c in ready if c.vector is not None and not c.tags])
        self._embed_names([c for c in ready if c.vector is not None])

    def _predict_tags(self, untagged: list[Create]) -> None:
        if not untagged:
            return
        try:
            vectors = np.stack([c.vector for c in untagged if c.vector is not None])
            predicted = self._predictor.predict(vectors, self._vocabulary.get())
        except Exception as exc:  # tags are a nicety: index without them
            log.warning("tag prediction failed: %s", error_detail(exc))
            predicted = [{} for _ in untagged]
        for c, tags in zip(untagged, predicted, strict=True):
            c.tags, c.tags_predicted = tags, bool(tags)

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
            log.warning("display-name embedding failed: %s", error_detail(exc))
            return
        for c, vector in zip(todo, vectors, strict=True):
            c.text_vector = vector

    def _fail(self, batch: IngestBatch, c: Create, code: OutcomeReason, detail: str | None) -> None:
        """A bad object: catalog FAILED with the reason's text (for people), the old picture's
        vector deleted; no retry."""
        c.vector = None
        failed = catalog_item(c, ItemStatus.FAILED, model_id=None, reason=code.describe(detail))
        if (
            put_if_newer(self._stores, batch, c.index, failed, on_error=_R.VERDICT_NOT_SAVED)
            is None
        ):
            return
        if c.stored is not None and c.stored.status is ItemStatus.INDEXED:
            # The key now holds a bad object: the old picture must stop matching.
            try:
                self._stores.vectors.delete([c.image_id], namespace=self._stores.namespace)
            except Exception as exc:
                batch.retry(c.index, _R.VERDICT_NOT_SAVED, error_detail(exc))
                return
        batch.failed(c.index, code, detail)

    def _write(self, batch: IngestBatch, ready: list[Create]) -> None:
        write_indexed(
            self._stores,
            batch,
            ready,
            model_id=self._embedder.model_id,
            upsert_chunk=self._upsert_chunk,
        )
