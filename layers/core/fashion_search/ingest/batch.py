"""One batch of events on its way through the ingest core, and what became of each event.

The ``Ingestor`` keeps only what outlives a batch (stores, model, ledger, caches). What a batch
learns on the way (each event's outcome, which events it never claimed in the ledger) lives in an
``IngestBatch`` that the stages (claim, removes, read, embed, write) are handed in turn, so two
batches handled at once by one ``Ingestor`` cannot see or overwrite each other's outcomes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from fashion_search.errors import FashionSearchError
from fashion_search.ingest.events import BlobEvent
from fashion_search.ingest.outcome import IngestOutcome, OutcomeReason, OutcomeStatus

log = logging.getLogger(__name__)


def error_detail(exc: Exception) -> str:
    """An exception as an outcome's detail: a named error's code and message; for anything
    else only its type (a bug's message may carry data that does not belong in a log)."""
    if isinstance(exc, FashionSearchError):
        return f"{exc.code}: {exc.message}"
    return f"unexpected {type(exc).__name__}"


class Verdict(NamedTuple):
    """An outcome decided before it is recorded (by a read in a worker thread)."""

    status: OutcomeStatus
    code: OutcomeReason
    detail: str | None = None


# Outcomes decided by the ledger itself: no claim of ours is held for those events.
_UNCLAIMED = frozenset(
    {OutcomeReason.LEDGER_DONE, OutcomeReason.LEDGER_BUSY, OutcomeReason.LEDGER_ERROR}
)


@dataclass(slots=True)
class IngestBatch:
    """The events of one ``Ingestor.handle`` call and their outcomes, by position. Each stage
    records the outcome of every event it drops; what reaches the end was indexed or deleted."""

    events: Sequence[BlobEvent]
    prefix: str  # the home's ingest prefix: an image id is the key without it
    _outcomes: dict[int, IngestOutcome] = field(default_factory=dict)

    def image_id(self, ev: BlobEvent) -> str:
        return ev.image_id(self.prefix)

    def skipped(self, i: int, code: OutcomeReason, detail: str | None = None) -> None:
        self._record(i, OutcomeStatus.SKIPPED, code, detail)

    def retry(self, i: int, code: OutcomeReason, detail: str | None = None) -> None:
        self._record(i, OutcomeStatus.RETRY, code, detail)

    def failed(self, i: int, code: OutcomeReason, detail: str | None = None) -> None:
        self._record(i, OutcomeStatus.FAILED, code, detail)

    def done(self, i: int, status: OutcomeStatus) -> None:
        """Indexed or deleted: nothing to explain."""
        self._record(i, status, None, None)

    def record(self, i: int, verdict: Verdict) -> None:
        self._record(i, verdict.status, verdict.code, verdict.detail)

    def outcomes(self) -> list[IngestOutcome]:
        """One outcome per event, in input order."""
        return [self._outcomes[i] for i in range(len(self.events))]

    def claimed(self) -> list[IngestOutcome]:
        """The outcomes of the events this batch claimed in the ledger (to complete or release)."""
        return [o for o in self.outcomes() if o.code not in _UNCLAIMED]

    def _record(
        self, i: int, status: OutcomeStatus, code: OutcomeReason | None, detail: str | None
    ) -> None:
        ev = self.events[i]
        outcome = IngestOutcome(ev, self.image_id(ev), status, code, detail)
        self._outcomes[i] = outcome
        reason = outcome.reason
        problem = status in (OutcomeStatus.RETRY, OutcomeStatus.FAILED)
        log.log(
            logging.WARNING if problem else logging.INFO,
            "ingest %s %s: %s%s",  # the key and the reason too, for a plain-text log
            ev.kind.value,
            status.value,
            ev.key,
            f" ({reason})" if reason else "",
            extra={
                "image_id": outcome.image_id,
                "key": ev.key,
                "status": status.value,
                "reason": reason,
                "reason_code": code.value if code is not None else None,
            },
        )
