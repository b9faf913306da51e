"""An idempotency ledger in front of the pipeline: a redelivered event that already completed is
skipped before anything is read, embedded or written.

The catalog's conditional writes already make a replay harmless; the ledger makes it free and
keeps two workers from embedding the same event at once. In AWS it is Powertools' idempotency
persistence (DynamoDB) used record by record, because Powertools' ``@idempotent_function`` wraps
one call per record and would break the one-model-call-per-batch design.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from fashion_search.ingest.events import BlobEvent

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer

# Lambda retries an asynchronous/SQS event for up to 6 hours; the record must outlive that.
IDEMPOTENCY_TTL_S = 7 * 3600
_DEFAULT_REMAINING_MS = 15 * 60 * 1000  # Lambda's maximum timeout, when no context is known


class Claim(StrEnum):
    NEW = "new"  # go ahead
    DONE = "done"  # completed earlier: skip
    BUSY = "busy"  # another worker holds it: retry later


class EventLedger(Protocol):
    def claim(self, event: BlobEvent) -> Claim: ...

    def complete(self, event: BlobEvent) -> None: ...

    def release(self, event: BlobEvent) -> None:
        """The attempt failed in a retryable way: let the next delivery run."""
        ...


class PowertoolsLedger:
    """``EventLedger`` on a Powertools idempotency persistence layer (DynamoDB in AWS)."""

    def __init__(
        self,
        persistence: BasePersistenceLayer,
        *,
        remaining_ms: Callable[[], int] | None = None,
        expires_after_seconds: int = IDEMPOTENCY_TTL_S,
        function_name: str = "ingest",
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

        self._persistence = persistence
        self._remaining_ms = remaining_ms or (lambda: _DEFAULT_REMAINING_MS)
        config = IdempotencyConfig(
            event_key_jmespath="[bucket, key, etag, version_id, kind, ordering_token]",
            expires_after_seconds=expires_after_seconds,
            raise_on_no_idempotency_key=True,
        )
        persistence.configure(config, function_name=function_name)

    def set_remaining_ms(self, remaining_ms: Callable[[], int]) -> None:
        """Per invocation: an in-progress claim expires with the invocation, so a crashed
        worker's events become retryable when its time is up."""
        self._remaining_ms = remaining_ms

    def claim(self, event: BlobEvent) -> Claim:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyItemAlreadyExistsError,
            IdempotencyItemNotFoundError,
        )

        data = event.idempotency_data()
        try:
            self._persistence.save_inprogress(data, remaining_time_in_millis=self._remaining_ms())
            return Claim.NEW
        except IdempotencyItemAlreadyExistsError:
            pass
        try:
            record = self._persistence.get_record(data)
        except IdempotencyItemNotFoundError:
            return Claim.BUSY  # deleted between our two calls: let the next delivery decide
        return Claim.DONE if record is not None and record.status == "COMPLETED" else Claim.BUSY

    def complete(self, event: BlobEvent) -> None:
        self._persistence.save_success(event.idempotency_data(), result={"done": True})

    def release(self, event: BlobEvent) -> None:
        self._persistence.delete_record(
            event.idempotency_data(), RuntimeError("ingest attempt failed; retry allowed")
        )
