"""functions/ingest/app.py, invoked as Lambda would: SQS batches and plain S3 events.

The handler runs here in the embedded home (it only wires Settings to the core), with the
Powertools idempotency ledger on DynamoDB under moto. tests/integration/test_ingest_aws.py runs
it against S3/DynamoDB/SQS (moto) and the Pinecone API server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from fashion_search.types import ItemStatus

from tests.fixtures.ingest import (
    CountingVectors,
    FakeContext,
    close_app,
    jpeg_bytes,
    load_app,
)

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
KEY = "images/red flower é.jpg"  # what events/ingest_s3_put.json names, URL-encoded


@pytest.fixture
def app(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_bundle: Path,
    idempotency_table: str,
    restore_logging: None,
) -> Iterator[ModuleType]:
    module = load_app(
        monkeypatch,
        {
            "FASHION_SEARCH_HOME": "embedded",
            "FASHION_SEARCH_EMBEDDED__DATA_DIR": str(tmp_path / "data"),
            "FASHION_SEARCH_MODEL__BUNDLE": str(tiny_bundle),
            "FASHION_SEARCH_MODEL__INTRA_OP_THREADS": "1",
            "FASHION_SEARCH_AWS__REGION": "us-east-1",
            "FASHION_SEARCH_AWS__IDEMPOTENCY_TABLE": idempotency_table,
        },
    )
    module.INGESTOR.stores.vectors = CountingVectors(module.INGESTOR.stores.vectors)
    yield module
    close_app(module)


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _sqs(*bodies: tuple[str, Any]) -> dict[str, Any]:
    template = _event("ingest_sqs_batch.json")["Records"][0]
    records = []
    for message_id, body in bodies:
        rec = copy.deepcopy(template)
        rec["messageId"] = message_id
        rec["body"] = body if isinstance(body, str) else json.dumps(body)
        records.append(rec)
    return {"Records": records}


def _s3(key: str, name: str = "ObjectCreated:Put", sequencer: str = "10") -> dict[str, Any]:
    event = _event("ingest_s3_put.json")
    rec = event["Records"][0]
    rec["eventName"] = name
    rec["s3"]["object"].update(key=key, sequencer=sequencer)
    rec["s3"]["object"].pop("eTag", None)
    return event


def _put(app: ModuleType, key: str, data: bytes) -> None:
    app.INGESTOR.stores.blobs.put(key, data, content_type="image/jpeg")


def test_sample_sqs_batch_indexes_the_image_and_skips_the_test_event(
    app: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    _put(app, KEY, jpeg_bytes(1))
    response = app.lambda_handler(_event("ingest_sqs_batch.json"), FakeContext())

    assert response == {"batchItemFailures": []}
    item = app.INGESTOR.stores.catalog.get("images/red flower é")
    assert item is not None and item.status is ItemStatus.INDEXED
    assert item.ordering_token.endswith("0055AED6DCD90281E5")
    out = capsys.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert emf and emf[-1]["ImagesIndexed"] in (1.0, [1.0])
    assert emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "fashion-search-test"


def test_only_failed_records_are_reported(app: ModuleType) -> None:
    _put(app, "images/a.jpg", jpeg_bytes(1))
    _put(app, "images/bad.jpg", b"not an image")
    event = _sqs(
        ("m-good", _s3("images/a.jpg")),
        ("m-bad-image", _s3("images/bad.jpg")),
        ("m-unreadable", "{this is not json"),
    )
    response = app.lambda_handler(event, FakeContext())
    # The bad image is FAILED for good (not retried); the unreadable message is retried until
    # the queue's redrive policy moves it to the DLQ.
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-unreadable"}]}
    bad = app.INGESTOR.stores.catalog.get("images/bad")
    assert bad is not None and bad.status is ItemStatus.FAILED and bad.reason


def test_transient_store_error_reports_just_its_record(app: ModuleType) -> None:
    _put(app, "images/a.jpg", jpeg_bytes(1))
    _put(app, "images/b.jpg", jpeg_bytes(2))
    app.INGESTOR.handle([])  # warm
    app.lambda_handler(_sqs(("m0", _s3("images/b.jpg", sequencer="01"))), FakeContext())
    app.INGESTOR.stores.vectors.fail_upserts = 1  # Pinecone 429 on this batch's upsert
    event = _sqs(
        ("m-create", _s3("images/a.jpg", sequencer="10")),
        ("m-delete", _s3("images/b.jpg", name="ObjectRemoved:Delete", sequencer="11")),
    )
    response = app.lambda_handler(event, FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-create"}]}

    again = app.lambda_handler(
        _sqs(("m-create", _s3("images/a.jpg", sequencer="10"))), FakeContext()
    )
    assert again == {"batchItemFailures": []}
    assert set(app.INGESTOR.stores.vectors.iter_ids()) == {"images/a"}


def test_whole_batch_failing_raises_so_lambda_retries_it(app: ModuleType) -> None:
    _put(app, "images/a.jpg", jpeg_bytes(1))
    app.INGESTOR.stores.vectors.fail_upserts = 1
    with pytest.raises(BatchProcessingError):
        app.lambda_handler(_sqs(("m1", _s3("images/a.jpg"))), FakeContext())


def test_redelivered_message_gives_one_upsert(app: ModuleType) -> None:
    _put(app, "images/a.jpg", jpeg_bytes(1))
    event = _sqs(("m1", _s3("images/a.jpg")))
    assert app.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    assert app.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    assert app.INGESTOR.stores.vectors.upserted["images/a"] == 1
    assert app.INGESTOR.stores.catalog.count() == 1


def test_plain_s3_events_from_the_samples(app: ModuleType) -> None:
    _put(app, KEY, jpeg_bytes(3))
    put = app.lambda_handler(_event("ingest_s3_put.json"), FakeContext())
    assert put["counts"]["indexed"] == 1
    test = app.lambda_handler(_event("ingest_s3_test_event.json"), FakeContext())
    assert sum(test["counts"].values()) == 0
    app.INGESTOR.stores.blobs.delete(KEY)
    gone = app.lambda_handler(_event("ingest_s3_delete.json"), FakeContext())
    assert gone["counts"]["deleted"] == 1
    assert app.INGESTOR.stores.vectors.count() == 0


def test_a_delete_marker_on_the_versioned_bucket_removes_the_item(app: ModuleType) -> None:
    """The template's bucket is versioned: a plain DELETE adds a delete marker and S3 sends
    ObjectRemoved:DeleteMarkerCreated with the marker's versionId and no size or eTag
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
    The s3:ObjectRemoved:* notification covers it; ingest must treat it as a removal."""
    record = _event("ingest_s3_delete_marker.json")["Records"][0]
    assert record["eventName"] == "ObjectRemoved:DeleteMarkerCreated"
    assert "versionId" in record["s3"]["object"] and "eTag" not in record["s3"]["object"]
    _put(app, KEY, jpeg_bytes(3))
    assert app.lambda_handler(_event("ingest_s3_put.json"), FakeContext())["counts"]["indexed"] == 1
    app.INGESTOR.stores.blobs.delete(KEY)
    gone = app.lambda_handler(_event("ingest_s3_delete_marker.json"), FakeContext())
    assert gone["counts"]["deleted"] == 1
    assert app.INGESTOR.stores.vectors.count() == 0
    # Through SQS, as deployed, the same record is one message and is acknowledged.
    body = json.dumps(_event("ingest_s3_delete_marker.json"))
    assert app.lambda_handler(_sqs(("m-marker", body)), FakeContext()) == {"batchItemFailures": []}


def test_plain_s3_event_with_a_transient_failure_raises(app: ModuleType) -> None:
    _put(app, KEY, jpeg_bytes(3))
    app.INGESTOR.stores.vectors.fail_upserts = 1
    with pytest.raises(app.RecordFailed):
        app.lambda_handler(_event("ingest_s3_put.json"), FakeContext())


def test_one_model_call_per_batch(app: ModuleType) -> None:
    calls: list[int] = []
    embed = app.INGESTOR.embedder.embed_images

    def counting(images: Any) -> Any:
        calls.append(len(images))
        return embed(images)

    app.INGESTOR.embedder.embed_images = counting
    bodies = []
    for i in range(4):
        _put(app, f"images/{i}.jpg", jpeg_bytes(i))
        bodies.append((f"m{i}", _s3(f"images/{i}.jpg")))
    assert app.lambda_handler(_sqs(*bodies), FakeContext()) == {"batchItemFailures": []}
    assert calls == [4]
