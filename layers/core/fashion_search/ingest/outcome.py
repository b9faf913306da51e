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


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    event: BlobEvent
    image_id: str
    status: OutcomeStatus
    reason: str | None = None

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
