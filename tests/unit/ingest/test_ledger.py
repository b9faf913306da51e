"""The Powertools idempotency ledger (DynamoDB under moto) in front of the ingest core."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from fashion_search.ingest import Claim, OutcomeReason, OutcomeStatus, PowertoolsLedger
from fashion_search.ingest.events import BlobEvent, EventKind, hex_token
from fashion_search.ingest.ledger import IDEMPOTENCY_TTL_S

from tests.fixtures.ingest import IngestHome, jpeg_bytes


def _ledger(client: Any, table: str) -> PowertoolsLedger:
    return PowertoolsLedger(
        DynamoDBPersistenceLayer(table_name=table, boto3_client=client),
        remaining_ms=lambda: 60_000,
    )


def test_window_outlives_lambdas_six_hour_event_age() -> None:
    assert IDEMPOTENCY_TTL_S > 6 * 3600


def test_claims(dynamodb_client: Any, idempotency_table: str) -> None:
    ledger = _ledger(dynamodb_client, idempotency_table)
    ev = BlobEvent(EventKind.CREATED, "a.jpg", bucket="b", etag="e1", ordering_token=hex_token(1))
    assert ledger.claim(ev) is Claim.NEW
    assert ledger.claim(ev) is Claim.BUSY  # in progress elsewhere
    ledger.complete(ev)
    assert ledger.claim(ev) is Claim.DONE
    # A different version of the same key, or its delete, is a different event.
    newer = BlobEvent(
        EventKind.CREATED, "a.jpg", bucket="b", etag="e2", ordering_token=hex_token(2)
    )
    assert ledger.claim(newer) is Claim.NEW
    ledger.release(newer)  # failed attempt: the redelivery may run
    assert ledger.claim(newer) is Claim.NEW
    gone = BlobEvent(EventKind.REMOVED, "a.jpg", bucket="b", ordering_token=hex_token(3))
    assert ledger.claim(gone) is Claim.NEW


def test_replay_is_skipped_before_any_work(
    ingest_home: IngestHome, dynamodb_client: Any, idempotency_table: str
) -> None:
    ingestor = ingest_home.make(ledger=_ledger(dynamodb_client, idempotency_table))
    ev = ingest_home.put("a.jpg", jpeg_bytes(1))
    assert ingestor.handle([ev])[0].status is OutcomeStatus.INDEXED
    replay = ingestor.handle([ev])[0]
    assert (replay.status, replay.code) == (OutcomeStatus.SKIPPED, OutcomeReason.LEDGER_DONE)
    assert "idempotency" in (replay.reason or "")
    assert ingest_home.vectors.upserted["a"] == 1
    assert ingest_home.embedder.image_calls == [1]


def test_failed_attempt_releases_the_claim(
    ingest_home: IngestHome, dynamodb_client: Any, idempotency_table: str
) -> None:
    ingestor = ingest_home.make(ledger=_ledger(dynamodb_client, idempotency_table))
    ev = ingest_home.put("a.jpg", jpeg_bytes(1))
    ingest_home.vectors.fail_upserts = 1
    assert ingestor.handle([ev])[0].needs_retry
    assert ingestor.handle([ev])[0].status is OutcomeStatus.INDEXED
