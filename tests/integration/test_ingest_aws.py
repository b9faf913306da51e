"""The AWS path end to end, locally: S3 (moto) notifies SQS (moto, with a DLQ redrive policy),
a poller stands in for Lambda's SQS event source, the real handler module ingests into the
DynamoDB catalog (moto) and Pinecone (the SDK against the local Pinecone API server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from fashion_search.ingest.metadata import tags_to_user_metadata
from fashion_search.types import ItemStatus

from tests.fakes.pinecone_api import FakePinecone
from tests.fixtures.aws import REGION
from tests.fixtures.ingest import (
    aws_ingest_env,
    close_app,
    jpeg_bytes,
    load_app,
    notify_queue,
    queue_arn,
)
from tests.fixtures.ingest import (
    poll_lambda as poll,
)
from tests.fixtures.s3_permissions import answer_as_without_permissions

INDEX = "fashion-ingest-test"
MAX_RECEIVES = 2


@pytest.fixture
def queues(moto_aws: None, s3_bucket: str, s3_client: Any) -> dict[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
    redrive = {"deadLetterTargetArn": queue_arn(sqs, dlq), "maxReceiveCount": str(MAX_RECEIVES)}
    queue = sqs.create_queue(
        QueueName="ingest",
        Attributes={"VisibilityTimeout": "0", "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    notify_queue(s3_client, sqs, bucket=s3_bucket, queue_url=queue)
    return {"queue": queue, "dlq": dlq}


@pytest.fixture
def app(
    monkeypatch: pytest.MonkeyPatch,
    tiny_bundle: Path,
    s3_bucket: str,
    dynamodb_catalog_table: str,
    idempotency_table: str,
    pinecone_fake: FakePinecone,
    queues: dict[str, str],
    restore_logging: None,
) -> Iterator[ModuleType]:
    pinecone_fake.create_index(INDEX, dimension=16)
    module = load_app(
        monkeypatch,
        aws_ingest_env(
            bundle=tiny_bundle,
            region=REGION,
            bucket=s3_bucket,
            table=dynamodb_catalog_table,
            idempotency_table=idempotency_table,
            index=INDEX,
            pinecone_api_key=pinecone_fake.api_key,
            pinecone_host=pinecone_fake.host_of(INDEX),
        ),
    )
    yield module
    close_app(module)


def drain(app: ModuleType, queue_url: str, rounds: int = 5) -> None:
    for _ in range(rounds):
        if poll(app, queue_url) is None:
            return


def test_put_and_delete_objects(
    app: ModuleType, s3_client: Any, s3_bucket: str, queues: dict[str, str]
) -> None:
    meta = tags_to_user_metadata({"articleType": "Shirts", "year": "2012"}, "Café shirt")
    s3_client.put_object(
        Bucket=s3_bucket, Key="images/red flower é.jpg", Body=jpeg_bytes(1), Metadata=meta
    )
    s3_client.put_object(Bucket=s3_bucket, Key="images/notes.jpg", Body=b"plain text")
    s3_client.put_object(Bucket=s3_bucket, Key="thumbnails/x.jpg", Body=jpeg_bytes(2))  # not ours
    drain(app, queues["queue"])

    stores = app.INGESTOR.stores
    item = stores.catalog.get("red flower é")
    assert item is not None and item.status is ItemStatus.INDEXED
    assert item.bucket == s3_bucket and item.etag
    bad = stores.catalog.get("notes")
    assert bad is not None and bad.status is ItemStatus.FAILED and bad.reason
    vec = stores.vectors.fetch(["red flower é"], namespace=stores.namespace)["red flower é"]
    assert vec.metadata["articleType"] == "Shirts" and vec.metadata["year"] == 2012
    assert vec.metadata["display_name"] == "Café shirt"
    assert stores.catalog.get("x") is None and stores.catalog.get("thumbnails/x") is None

    s3_client.delete_object(Bucket=s3_bucket, Key="images/red flower é.jpg")
    drain(app, queues["queue"])
    assert stores.vectors.fetch(["red flower é"], namespace=stores.namespace) == {}
    gone = stores.catalog.get("red flower é")
    assert gone is not None and gone.status is ItemStatus.DELETED


def test_pinecone_outage_after_the_catalog_write_ends_indexed(
    app: ModuleType,
    s3_client: Any,
    s3_bucket: str,
    queues: dict[str, str],
    pinecone_fake: FakePinecone,
) -> None:
    pinecone_fake.fail_next("/vectors/upsert", times=20, status=503)
    s3_client.put_object(Bucket=s3_bucket, Key="images/a.jpg", Body=jpeg_bytes(3))
    response = poll(app, queues["queue"])  # the setup's s3:TestEvent may share the batch
    assert response is not None and response["batchItemFailures"]
    item = app.INGESTOR.stores.catalog.get("a")
    assert item is not None and item.status is ItemStatus.PENDING
    pinecone_fake.clear()
    drain(app, queues["queue"])
    item = app.INGESTOR.stores.catalog.get("a")
    assert item is not None and item.status is ItemStatus.INDEXED


def test_poison_message_lands_in_the_dlq(app: ModuleType, queues: dict[str, str]) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=queues["queue"], MessageBody="{not an S3 event")
    for _ in range(MAX_RECEIVES + 1):
        poll(app, queues["queue"])
    dead = sqs.receive_message(QueueUrl=queues["dlq"], MaxNumberOfMessages=10)
    assert [m["Body"] for m in dead.get("Messages", [])] == ["{not an S3 event"]


def test_loader_into_s3_then_ingest_finds_the_tags(
    app: ModuleType,
    s3_client: Any,
    s3_bucket: str,
    queues: dict[str, str],
    tmp_path: Path,
    pinecone_fake: FakePinecone,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fashion_search.ingest.kaggle.loader import CatalogLoader

    images = tmp_path / "images"
    images.mkdir()
    (images / "15970.jpg").write_bytes(jpeg_bytes(8))
    (images / "39386.jpg").write_bytes(jpeg_bytes(9))
    styles = tmp_path / "styles.csv"
    styles.write_text(
        "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
        "productDisplayName\n"
        "15970,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011,Casual,Turtle Check Navy Shirt\n"
        "39386,Men,Apparel,Bottomwear,Jeans,Blue,Summer,2012,Casual,Peter England, Party Jeans\n",
        encoding="utf-8",
    )
    stores = app.INGESTOR.stores
    summary = CatalogLoader(stores, workers=2).load(styles, images)
    assert summary.loaded == 2
    head = s3_client.head_object(Bucket=s3_bucket, Key="images/39386.jpg")
    assert head["Metadata"]["articletype"] == "Jeans"
    drain(app, queues["queue"])

    jeans = stores.vectors.fetch(["39386"], namespace=stores.namespace)["39386"]
    assert jeans.metadata["display_name"] == "Peter England, Party Jeans"
    assert jeans.metadata["baseColour"] == "Blue" and jeans.metadata["tags_predicted"] is False
    item = stores.catalog.get("15970")
    assert item is not None and item.status is ItemStatus.INDEXED
    # Re-running the loader uploads nothing, so no new events either.
    assert CatalogLoader(stores).load(styles, images).unchanged == 2
    assert poll(app, queues["queue"]) is None
    # Ingest wrote nothing into the bucket (it never triggers itself), and no secret was logged.
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["images/15970.jpg", "images/39386.jpg"]
    assert pinecone_fake.api_key not in capsys.readouterr().out


def test_reconcile_removes_items_whose_object_is_gone(
    app: ModuleType, s3_client: Any, s3_bucket: str, queues: dict[str, str]
) -> None:
    from fashion_search.ingest.reconcile import reconcile

    for i in range(3):
        s3_client.put_object(Bucket=s3_bucket, Key=f"images/keep/{i}.jpg", Body=jpeg_bytes(i))
    drain(app, queues["queue"])
    stores = app.INGESTOR.stores
    assert stores.catalog.count(ItemStatus.INDEXED) == 3
    # The object is deleted and its notification is lost (purged before any poll).
    s3_client.delete_object(Bucket=s3_bucket, Key="images/keep/1.jpg")
    boto3.client("sqs", region_name=REGION).purge_queue(QueueUrl=queues["queue"])

    dry = reconcile(app.INGESTOR, fix=False)
    assert dry.vanished_blobs == ["keep/1"] and not dry.consistent
    report = reconcile(app.INGESTOR)
    assert report.repaired["vanished_blobs_removed"] == 1
    assert set(stores.vectors.iter_ids(namespace=stores.namespace)) == {"keep/0", "keep/2"}
    gone = stores.catalog.get("keep/1")
    assert gone is not None and gone.status is ItemStatus.DELETED
    assert reconcile(app.INGESTOR, fix=False).consistent


def _polls_until_empty(app: ModuleType, queue_url: str) -> list[dict[str, Any]]:
    responses = []
    for _ in range(MAX_RECEIVES + 2):
        response = poll(app, queue_url)
        if response is None:
            break
        responses.append(response)
    return responses


def _put_then_vanish(s3_client: Any, bucket: str, key: str, queue_url: str) -> None:
    """The object's create event is in the queue, the object is gone, and its remove event is
    not (yet) there: what ingest meets when the delete lands between notification and read."""
    sqs = boto3.client("sqs", region_name=REGION)
    s3_client.put_object(Bucket=bucket, Key=key, Body=jpeg_bytes(4))
    (created,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=created["ReceiptHandle"])
    s3_client.delete_object(Bucket=bucket, Key=key)
    sqs.purge_queue(QueueUrl=queue_url)  # drops the ObjectRemoved event
    sqs.send_message(QueueUrl=queue_url, MessageBody=created["Body"])


def test_an_object_deleted_before_ingest_reads_it_is_skipped_not_retried(
    app: ModuleType, s3_client: Any, s3_bucket: str, queues: dict[str, str]
) -> None:
    """As deployed: S3 answers the vanished key with 403 (not 404). With ListBucket on the
    ingest prefix (template.yaml, ListIngestPrefix) ingest sees it is gone and acknowledges."""
    drain(app, queues["queue"])  # the bucket's s3:TestEvent
    answer_as_without_permissions(
        app.INGESTOR.stores.blobs._client, real=s3_client, list_bucket=True
    )
    _put_then_vanish(s3_client, s3_bucket, "images/gone.jpg", queues["queue"])
    responses = _polls_until_empty(app, queues["queue"])
    assert responses and all(r["batchItemFailures"] == [] for r in responses), responses
    sqs = boto3.client("sqs", region_name=REGION)
    assert "Messages" not in sqs.receive_message(QueueUrl=queues["dlq"])
    item = app.INGESTOR.stores.catalog.get("gone")
    assert item is None or item.status is not ItemStatus.FAILED


def test_without_any_listbucket_the_403_is_retried_and_says_why(
    app: ModuleType,
    s3_client: Any,
    s3_bucket: str,
    queues: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    drain(app, queues["queue"])
    answer_as_without_permissions(
        app.INGESTOR.stores.blobs._client, real=s3_client, list_bucket=False
    )
    _put_then_vanish(s3_client, s3_bucket, "images/gone.jpg", queues["queue"])
    response = poll(app, queues["queue"])
    assert response is not None and response["batchItemFailures"]
    reasons = [str(getattr(r, "reason", "")) for r in caplog.records]
    assert any("403" in r and "s3:ListBucket" in r for r in reasons), reasons


def test_a_real_denial_of_an_existing_object_is_retried(
    app: ModuleType, s3_client: Any, s3_bucket: str, queues: dict[str, str]
) -> None:
    drain(app, queues["queue"])
    answer_as_without_permissions(
        app.INGESTOR.stores.blobs._client, real=s3_client, list_bucket=True, read_existing=False
    )
    s3_client.put_object(Bucket=s3_bucket, Key="images/locked.jpg", Body=jpeg_bytes(5))
    response = poll(app, queues["queue"])
    assert response is not None and response["batchItemFailures"]
    item = app.INGESTOR.stores.catalog.get("locked")
    assert item is None or item.status is not ItemStatus.INDEXED
