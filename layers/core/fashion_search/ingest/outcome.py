"""What ingest did with each event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from fashion_search.ingest.events import BlobEvent


class OutcomeStatus(StrEnum):
    INDEXED = "indexed"  # vector upserted, catalog INDEXED
    DELETED = "deleted"  # vector removed, catalog tombstone
    FAILED = "failed"  # permanently refused (bad object): catalog FAILED with the reason; no retry
    SKIPPED = "skipped"  # nothing to do: replay, stale or superseded event, object gone
    RETRY = "retry"  # transient failure: report it so the event is delivered again


class OutcomeReason(StrEnum):
    """Why an event ended as it did. Code compares these members; people read the text that
    ``describe`` makes of one (logs, the CLI's report, a FAILED catalog item's ``reason``), so the
    text may be reworded without breaking anything that decides on it."""

    # skipped: nothing to do
    OUTSIDE_PREFIX = "outside_prefix"
    LEDGER_DONE = "ledger_done"  # the idempotency record says it completed earlier
    SUPERSEDED = "superseded"  # a newer event for the same image in the batch
    STALE = "stale"  # the catalog holds a newer event
    STALE_MEANWHILE = "stale_meanwhile"  # a newer event got in between our writes
    DELETED_SAME_ORDER = "deleted_same_order"
    ALREADY_INDEXED = "already_indexed"  # a replay of an event indexed by this model
    SAME_OBJECT_INDEXED = "same_object_indexed"  # this very object (same eTag), e.g. migrated
    ALREADY_FAILED = "already_failed"
    ALREADY_DELETED = "already_deleted"
    OBJECT_GONE = "object_gone"  # removed after the event was sent; its remove event follows
    # failed: a bad object, refused for good
    TOO_LARGE = "too_large"
    EMPTY_OBJECT = "empty_object"
    BAD_IMAGE = "bad_image"  # the decoder refused it; the detail says why
    # retry: a transient cause
    LEDGER_BUSY = "ledger_busy"
    LEDGER_ERROR = "ledger_error"
    CATALOG_READ = "catalog_read"
    CATALOG_WRITE = "catalog_write"
    VERDICT_NOT_SAVED = "verdict_not_saved"  # a bad object's FAILED item could not be written
    BLOB_READ = "blob_read"
    EMBED = "embed"
    VECTOR_UPSERT = "vector_upsert"
    VECTOR_DELETE = "vector_delete"
    CLEANUP = "cleanup"

    def describe(self, detail: str | None = None) -> str:
        """The human-readable reason; ``detail`` fills the member's ``{}`` (an error, a prefix)."""
        text = _TEXTS[self]
        return text.format(detail if detail is not None else "?") if "{}" in text else text


_R = OutcomeReason
_TEXTS: dict[OutcomeReason, str] = {
    _R.OUTSIDE_PREFIX: "outside the ingest prefix {}",
    _R.LEDGER_DONE: "duplicate: idempotency record",
    _R.SUPERSEDED: "superseded by a newer event in the batch",
    _R.STALE: "stale: a newer event was already applied",
    _R.STALE_MEANWHILE: "stale: a newer event was applied meanwhile",
    _R.DELETED_SAME_ORDER: "stale: the image was deleted by an event with the same order",
    _R.ALREADY_INDEXED: "duplicate: already indexed",
    _R.SAME_OBJECT_INDEXED: "already indexed (same eTag)",
    _R.ALREADY_FAILED: "duplicate: already failed ({})",
    _R.ALREADY_DELETED: "duplicate: already deleted",
    _R.OBJECT_GONE: "object no longer exists",
    _R.TOO_LARGE: "{}",
    _R.EMPTY_OBJECT: "empty object (0 bytes)",
    _R.BAD_IMAGE: "{}",
    _R.LEDGER_BUSY: "being processed by another worker",
    _R.LEDGER_ERROR: "idempotency store: {}",
    _R.CATALOG_READ: "{}",
    _R.CATALOG_WRITE: "catalog: {}",
    _R.VERDICT_NOT_SAVED: "{}",
    _R.BLOB_READ: "read: {}",
    _R.EMBED: "embed: {}",
    _R.VECTOR_UPSERT: "vector upsert: {}",
    _R.VECTOR_DELETE: "vector delete: {}",
    _R.CLEANUP: "cleanup: {}",
}


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    event: BlobEvent
    image_id: str
    status: OutcomeStatus
    code: OutcomeReason | None = None  # None: indexed or deleted, nothing to explain
    detail: str | None = None  # what fills the code's text: an error, the stored reason

    @property
    def reason(self) -> str | None:
        """The human-readable why, for logs and reports; decide on ``code``, never on this."""
        return None if self.code is None else self.code.describe(self.detail)

    @property
    def needs_retry(self) -> bool:
        return self.status is OutcomeStatus.RETRY


def summarise(outcomes: Iterable[IngestOutcome]) -> dict[str, int]:
    """Counts per status, every status present (metrics want zeros too)."""
    counts = Counter(o.status.value for o in outcomes)
    return {s.value: counts.get(s.value, 0) for s in OutcomeStatus}


def failed_sources(outcomes: Iterable[IngestOutcome]) -> set[str]:
    """Source ids (SQS message ids) with at least one event to retry."""
    return {o.event.source_id for o in outcomes if o.needs_retry and o.event.source_id}


PROBLEMS = (OutcomeStatus.FAILED, OutcomeStatus.RETRY)


@dataclass(frozen=True, slots=True)
class IngestReport:
    """A one-shot ingest's counts and the events that did not make it (FAILED or RETRY)."""

    counts: dict[str, int]
    problems: list[IngestOutcome]

    @property
    def ok(self) -> bool:
        return not self.problems


def report(outcomes: Iterable[IngestOutcome]) -> IngestReport:
    done = list(outcomes)
    return IngestReport(summarise(done), [o for o in done if o.status in PROBLEMS])


class LatestOutcomes:
    """The last outcome per blob key over many batches (the watcher's session): an event left to
    retry that a later batch indexed is no longer a problem."""

    def __init__(self) -> None:
        self._latest: dict[str, IngestOutcome] = {}

    def add(self, outcomes: Iterable[IngestOutcome]) -> None:
        for o in outcomes:
            self._latest[o.event.key] = o

    def problems(self) -> list[IngestOutcome]:
        return [o for o in self._latest.values() if o.status in PROBLEMS]
