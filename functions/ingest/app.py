"""The ingest Lambda: S3 notifications through SQS (or a plain S3 event) -> the ingest core.

Thin on purpose: parse, call ``Ingestor.handle`` once for the whole batch (one batched model
call, one batched upsert), then report. Powertools' BatchProcessor wants a per-record handler,
which would mean one model call per image; so the core processes the batch first and the
per-record handler given to ``process_partial_response`` only replays each record's outcome
(raise = failed). BatchProcessor then builds ``batchItemFailures`` exactly as usual, including
its rule that a batch where every record failed raises, so Lambda retries it whole.

Stores, model and idempotency ledger are built at module scope (``runtime.build_ingestor``): once
per cold start.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from fashion_search.errors import InvalidInput
from fashion_search.ingest import (
    BlobEvent,
    IngestOutcome,
    PowertoolsLedger,
    failed_sources,
    parse_s3_event,
    parse_sqs_body,
    summarise,
)
from fashion_search.ingest.events import is_sqs_event
from fashion_search.runtime import build_ingestor
from fashion_search.settings import Settings

logger = Logger()  # service name: POWERTOOLS_SERVICE_NAME
metrics = Metrics()  # namespace: POWERTOOLS_METRICS_NAMESPACE
# The core logs through stdlib loggers under "fashion_search": give them Powertools' JSON format
# (with the Lambda context keys) instead of Lambda's plain text.
copy_config_to_registered_loggers(source_logger=logger, include={"fashion_search"})

_METRIC_NAMES = {
    "indexed": "ImagesIndexed",
    "deleted": "ImagesDeleted",
    "failed": "ImagesFailed",
    "skipped": "EventsSkipped",
    "retry": "EventsRetried",
}


class RecordFailed(Exception):
    """Raised by the per-record handler so BatchProcessor reports the record as failed."""


SETTINGS = Settings()
INGESTOR = build_ingestor(SETTINGS, idempotent=True)
processor = BatchProcessor(event_type=EventType.SQS)


def _count(outcomes: list[IngestOutcome]) -> dict[str, int]:
    counts = summarise(outcomes)
    for status, value in counts.items():
        metrics.add_metric(name=_METRIC_NAMES[status], unit=MetricUnit.Count, value=value)
    logger.info("ingest batch done", extra={"counts": counts})
    return counts


def _handle_sqs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    events: list[BlobEvent] = []
    unreadable: dict[str, str] = {}
    for record in SQSEvent(event).records:
        try:
            events.extend(parse_sqs_body(record.body, message_id=record.message_id))
        except InvalidInput as exc:
            # Retried like any failure, so after maxReceiveCount it lands in the DLQ for a human.
            logger.error("unreadable message", extra={"message_id": record.message_id})
            unreadable[record.message_id] = exc.message
    outcomes = INGESTOR.handle(events)
    _count(outcomes)
    retry = failed_sources(outcomes)
    reasons = {o.event.source_id: o.reason for o in outcomes if o.needs_retry}

    def record_handler(record: SQSRecord) -> None:
        if record.message_id in unreadable:
            raise RecordFailed(unreadable[record.message_id])
        if record.message_id in retry:
            raise RecordFailed(reasons.get(record.message_id) or "retry")

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)


def _handle_s3(event: dict[str, Any]) -> dict[str, Any]:
    """A plain S3 notification (direct trigger, or ``sam local invoke -e events/...``)."""
    events = parse_s3_event(S3Event(event).raw_event)
    outcomes = INGESTOR.handle(events)
    counts = _count(outcomes)
    if any(o.needs_retry for o in outcomes):
        # Asynchronous invocations are retried by Lambda when the handler raises.
        raise RecordFailed(f"{counts['retry']} event(s) need a retry")
    return {"counts": counts}


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if INGESTOR.ledger is not None and isinstance(INGESTOR.ledger, PowertoolsLedger):
        INGESTOR.ledger.set_remaining_ms(context.get_remaining_time_in_millis)
    if is_sqs_event(event):
        return _handle_sqs(event, context)
    return _handle_s3(event)


# The template's Globals name every function's entry ``app.handler``.
handler = lambda_handler

__all__ = ["handler", "lambda_handler"]
