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


@dataclass(slots=True)
class IngestBatch:
    """The events of one ``Ingestor.handle`` call and their outcomes, by position."""

    events: Sequence[BlobEvent]
    prefix: str  # the home's ingest prefix: an image id is the key without it
    _outcomes: dict[int, IngestOutcome] = field(default_factory=dict)
    _unclaimed: set[int] = field(default_factory=set)  # never claimed in the ledger

    def image_id(self, ev: BlobEvent) -> str:
        return ev.image_id(self.prefix)

    def record(
        self,
        i: int,
        status: OutcomeStatus,
        code: OutcomeReason | None = None,
        detail: str | None = None,
        *,
        claimed: bool = True,
    ) -> None:
        """Event ``i``'s outcome (logged as it is recorded). ``claimed=False``: the ledger holds
        no claim of ours for it, so settling the ledger must leave it alone."""
        ev = self.events[i]
        outcome = IngestOutcome(ev, self.image_id(ev), status, code, detail)
        self._outcomes[i] = outcome
        if not claimed:
            self._unclaimed.add(i)
        reason = outcome.reason
        level = (
            logging.WARNING
            if status in (OutcomeStatus.RETRY, OutcomeStatus.FAILED)
            else logging.INFO
        )
        log.log(
            level,
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

    def outcomes(self) -> list[IngestOutcome]:
        """One outcome per event, in input order (every stage records each event it drops)."""
        return [self._outcomes[i] for i in range(len(self.events))]

    def claimed(self) -> list[IngestOutcome]:
        """The outcomes of the events this batch claimed in the ledger (to complete or release)."""
        return [o for i, o in sorted(self._outcomes.items()) if i not in self._unclaimed]
