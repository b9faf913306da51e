"""Ingest: blob events (S3 notifications, folder changes) -> embeddings -> catalog and index.

``Ingestor(stores, embedder, settings=...).handle(events)`` is the one core every trigger calls:
the Lambda handler, the folder watcher, ``fashion-search ingest`` and ``reconcile``.
"""

from fashion_search.ingest.events import (
    BlobEvent,
    EventKind,
    folder_created,
    folder_removed,
    parse_s3_event,
    parse_sqs_body,
)
from fashion_search.ingest.ledger import Claim, EventLedger, PowertoolsLedger
from fashion_search.ingest.outcome import (
    IngestOutcome,
    OutcomeReason,
    OutcomeStatus,
    failed_sources,
    summarise,
)
from fashion_search.ingest.pipeline import Ingestor

__all__ = [
    "BlobEvent",
    "Claim",
    "EventKind",
    "EventLedger",
    "IngestOutcome",
    "Ingestor",
    "OutcomeReason",
    "OutcomeStatus",
    "PowertoolsLedger",
    "failed_sources",
    "folder_created",
    "folder_removed",
    "parse_s3_event",
    "parse_sqs_body",
    "summarise",
]
