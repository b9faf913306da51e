"""``fashion-search aws backfill``: index what a bucket already holds, on AWS's own engine.

Nothing is embedded on the caller's machine. The command lists the ingest prefix (paginated
ListObjectsV2, 1000 keys a page), reads the catalog rows of each page (BatchGetItem, 100 keys a
call), and for every object the catalog does not hold indexed with the same eTag (and model)
sends an S3-event-shaped message (``backfill_events``) onto the stack's ingest queue, 10 per
SendMessageBatch. The ingest Lambda then treats them exactly like S3's own notifications: same
handler, same idempotency ledger, same partial-batch retries, same dead-letter queue, and the
same backpressure (the event source's MaximumConcurrency). Why this and not a Step Functions
Distributed Map: docs/deploy.md, "Backfill".

Resumable: before a message is sent, a catalog row for an image the catalog does not know is
written as PENDING with the object's eTag (the *queued marker*). A rerun skips PENDING rows with
the listed eTag while the queue still holds messages (they are in flight); once the queue is
empty a row still PENDING was lost (dead-lettered, or the send never happened) and is queued
again. Every other decision follows from the catalog, so a rerun after the queue drained
enqueues nothing.

Ordering tokens (see ``ingest.events``): a backfill message must never outrank a real S3 event
for the same key, or a later real delete would be refused as stale. New images get the lowest
token (``ZERO_TOKEN``, above the loader's ""); images the catalog knows keep the stored token (the
catalog accepts a same-token write unless DELETED); a tombstone or a FAILED row being retried
gets the stored token + 1, still no larger than any later sequencer S3 assigns to that key.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fashion_search.ingest.backfill.messages import EnqueueFailure, MessageSender, backfill_event
from fashion_search.ingest.events import TOKEN_WIDTH
from fashion_search.stores.catalog import Catalog
from fashion_search.types import CatalogItem, ItemStatus, image_id_for_key

log = logging.getLogger(__name__)

ZERO_TOKEN = "0" * TOKEN_WIDTH
SEND_BATCH = 10  # SendMessageBatch takes at most 10 entries
_SAMPLE = 10


class Reason(StrEnum):
    """Why an object is queued."""

    NEW = "new"  # the catalog has no row (or only the loader's row)
    CHANGED = "changed"  # the catalog holds another eTag
    OTHER_MODEL = "other model"  # same eTag, embedded by another model
    STUCK = "pending, not in flight"  # PENDING and nothing left on the queue to finish it
    TOMBSTONED = "tombstoned but present"  # its create event was lost after a delete
    RETRY_FAILED = "failed earlier, retried"  # --retry-failed


class Skip(StrEnum):
    """Why an object is not queued."""

    INDEXED = "already indexed"
    FAILED = "failed earlier (same eTag)"
    IN_FLIGHT = "queued earlier, still in flight"
    NOT_AN_OBJECT = "folder marker"


@dataclass(frozen=True, slots=True)
class Listed:
    key: str
    etag: str
    size: int


@dataclass(frozen=True, slots=True)
class Enqueue:
    listed: Listed
    image_id: str
    token: str
    reason: Reason
    marker: bool  # write the queued marker (PENDING row) before sending


@dataclass(slots=True)
class BackfillReport:
    dry_run: bool
    listed: int = 0
    listed_bytes: int = 0
    queue_busy: bool = False
    queued: Counter[str] = field(default_factory=Counter)  # reason -> objects
    queued_bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> objects
    failed: list[EnqueueFailure] = field(default_factory=list)
    sample: dict[str, list[str]] = field(default_factory=dict)  # reason -> first keys

    @property
    def queued_total(self) -> int:
        return sum(self.queued.values())

    def note(self, bucket: Counter[str], reason: str, key: str) -> None:
        bucket[reason] += 1
        shown = self.sample.setdefault(reason, [])
        if len(shown) < _SAMPLE:
            shown.append(key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "listed": self.listed,
            "listed_bytes": self.listed_bytes,
            "queue_busy_at_start": self.queue_busy,
            "queued" if not self.dry_run else "would_queue": dict(self.queued),
            "queued_total" if not self.dry_run else "would_queue_total": self.queued_total,
            "queued_bytes" if not self.dry_run else "would_queue_bytes": self.queued_bytes,
            "skipped": dict(self.skipped),
            "failed": {
                "count": len(self.failed),
                "sample": [f.as_dict() for f in self.failed[:_SAMPLE]],
            },
            "sample": self.sample,
        }


def next_token(token: str) -> str:
    """The smallest token above ``token`` (tokens are hex, see ``ingest.events``)."""
    try:
        value = int(token or "0", 16)
    except ValueError:
        return token  # not ours to reorder: keep the stored token
    return f"{value + 1:0{TOKEN_WIDTH}X}"


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[list[Listed]]:
    """The objects under ``prefix``, a ListObjectsV2 page (up to 1000) at a time."""
    from botocore.exceptions import BotoCoreError, ClientError

    from fashion_search.stores.aws.errors import translate_aws_error

    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    try:
        for page in pages:
            yield [
                Listed(key=o["Key"], etag=str(o.get("ETag", "")).strip('"'), size=int(o["Size"]))
                for o in page.get("Contents", [])
            ]
    except (ClientError, BotoCoreError) as exc:  # no such bucket, no s3:ListBucket, no network
        raise translate_aws_error(
            exc, service="S3", what=f"listing s3://{bucket}/{prefix}", transient_codes=()
        ) from exc


def decide(
    obj: Listed,
    cur: CatalogItem | None,
    *,
    model_id: str | None,
    queue_busy: bool,
    retry_failed: bool,
) -> tuple[Reason, str, bool] | Skip:
    """What to do with one listed object given its catalog row: (reason, token, marker) or a
    skip. Pure, so every case is tested without AWS."""
    if cur is None:
        return Reason.NEW, ZERO_TOKEN, True
    same = cur.etag is None or cur.etag == obj.etag
    status = cur.status
    if status is ItemStatus.PENDING and cur.ordering_token == "":
        return Reason.NEW, ZERO_TOKEN, True  # the loader's row: keeps its tags
    if status is ItemStatus.PENDING:
        if same and queue_busy:
            return Skip.IN_FLIGHT
        return Reason.STUCK, cur.ordering_token, False
    if status is ItemStatus.INDEXED:
        if not same:
            return Reason.CHANGED, cur.ordering_token, False
        if model_id is not None and cur.model_id != model_id:
            return Reason.OTHER_MODEL, cur.ordering_token, False
        return Skip.INDEXED
    if status is ItemStatus.FAILED:
        if not same:
            return Reason.CHANGED, cur.ordering_token, False
        if retry_failed:
            return Reason.RETRY_FAILED, next_token(cur.ordering_token), False
        return Skip.FAILED
    return Reason.TOMBSTONED, next_token(cur.ordering_token), False


class Backfill:
    """Plans and enqueues; ``run`` is the whole command. Clients are injected (boto3 or moto)."""

    def __init__(
        self,
        *,
        s3: Any,
        catalog: Catalog,
        sender: MessageSender,
        bucket: str,
        region: str,
        ingest_prefix: str,
        model_id: str | None = None,
        workers: int = 8,
    ) -> None:
        self._s3 = s3
        self._catalog = catalog
        self._sender = sender
        self._bucket = bucket
        self._region = region
        self._ingest_prefix = ingest_prefix
        self._model_id = model_id
        self._workers = max(1, workers)

    def run(
        self,
        *,
        prefix: str | None = None,
        dry_run: bool = False,
        retry_failed: bool = False,
        requeue_pending: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> BackfillReport:
        """List, compare, enqueue. ``on_progress(listed, queued)`` after each chunk."""
        prefix = self._ingest_prefix if prefix is None else prefix
        report = BackfillReport(dry_run=dry_run)
        report.queue_busy = (not requeue_pending) and self._sender.in_flight() > 0
        progress = on_progress or (lambda listed, queued: None)
        with ThreadPoolExecutor(self._workers, thread_name_prefix="backfill") as pool:
            for page in list_objects(self._s3, self._bucket, prefix):
                todo = self._plan(page, report, retry_failed=retry_failed)
                report.listed += len(page)
                report.listed_bytes += sum(o.size for o in page)
                if dry_run:
                    progress(len(page), len(todo))
                    continue
                chunks = [todo[i : i + SEND_BATCH] for i in range(0, len(todo), SEND_BATCH)]
                progress(len(page) - len(todo), 0)
                for chunk, failures in zip(chunks, pool.map(self._enqueue, chunks), strict=True):
                    report.failed.extend(failures)
                    progress(len(chunk), len(chunk) - len(failures))
        log.info("backfill finished", extra={"report": report.as_dict()})
        return report

    def _plan(
        self, page: list[Listed], report: BackfillReport, *, retry_failed: bool
    ) -> list[Enqueue]:
        objects = [o for o in page if not o.key.endswith("/")]
        for o in page:
            if o.key.endswith("/"):
                report.note(report.skipped, Skip.NOT_AN_OBJECT, o.key)
        ids = {o.key: image_id_for_key(o.key, self._ingest_prefix) for o in objects}
        stored = self._catalog.get_many(list(dict.fromkeys(ids.values())))
        todo: list[Enqueue] = []
        for o in objects:
            iid = ids[o.key]
            verdict = decide(
                o,
                stored.get(iid),
                model_id=self._model_id,
                queue_busy=report.queue_busy,
                retry_failed=retry_failed,
            )
            if isinstance(verdict, Skip):
                report.note(report.skipped, verdict, o.key)
                continue
            reason, token, marker = verdict
            report.note(report.queued, reason, o.key)
            report.queued_bytes += o.size
            todo.append(Enqueue(o, iid, token, reason, marker))
        return todo

    def _enqueue(self, chunk: list[Enqueue]) -> list[EnqueueFailure]:
        """Markers first, then one SendMessageBatch: a message never overtakes its marker."""
        ready: list[Enqueue] = []
        failures: list[EnqueueFailure] = []
        for item in chunk:
            if item.marker:
                failure = self._mark(item)
                if failure is not None:
                    failures.append(failure)
                    continue
            ready.append(item)
        bodies = {
            item.listed.key: backfill_event(
                bucket=self._bucket,
                region=self._region,
                key=item.listed.key,
                etag=item.listed.etag,
                size=item.listed.size,
                sequencer=item.token,
            )
            for item in ready
        }
        return failures + self._sender.send(bodies)

    def _mark(self, item: Enqueue) -> EnqueueFailure | None:
        from fashion_search.errors import FashionSearchError, StaleEvent

        row = CatalogItem(
            image_id=item.image_id,
            key=item.listed.key,
            status=ItemStatus.PENDING,
            bucket=self._bucket,
            etag=item.listed.etag,
            ordering_token=item.token,
        )
        try:
            self._catalog.put_if_newer(row)
        except StaleEvent:
            return None  # a real event got there first; the message is a harmless duplicate
        except FashionSearchError as exc:
            return EnqueueFailure(item.listed.key, f"catalog marker: {exc.message}")
        return None


def summary_lines(report: BackfillReport) -> Iterable[str]:
    """Human lines for the end of the command."""
    verb = "would queue" if report.dry_run else "queued"
    yield (
        f"listed {report.listed} objects ({report.listed_bytes / 1e6:.1f} MB); {verb} "
        f"{report.queued_total} ({report.queued_bytes / 1e6:.1f} MB)"
    )
    for reason, n in sorted(report.queued.items()):
        yield f"  {verb}: {n} {reason}"
    for reason, n in sorted(report.skipped.items()):
        yield f"  skipped: {n} {reason}"
    if report.queue_busy:
        yield (
            "  the ingest queue still held messages at the start: PENDING rows with the listed "
            "eTag were treated as in flight (--requeue-pending queues them anyway)"
        )
    if report.failed:
        yield f"  NOT queued: {len(report.failed)} (rerun the command to retry them)"
