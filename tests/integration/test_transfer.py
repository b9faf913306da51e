"""``migrate`` between the embedded home and AWS (S3 + DynamoDB under moto, Pinecone through the
real SDK against the local Pinecone API server), and ``reindex`` into Pinecone."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest
from fashion_search.errors import InvalidInput
from fashion_search.home import Stores, open_stores
from fashion_search.ingest.metadata import tags_from_user_metadata
from fashion_search.settings import AwsSettings, Home, Settings
from fashion_search.stores.pinecone_index import PineconeVectorIndex
from fashion_search.transfer import migrate, reindex
from fashion_search.types import CatalogItem, ItemStatus

from tests.fakes.pinecone_api import FakePinecone
from tests.fixtures.aws import REGION
from tests.fixtures.ingest import (
    CountingVectors,
    FakeContext,
    aws_ingest_env,
    close_app,
    load_app,
    notify_queue,
)
from tests.unit.transfer.home import Home as EmbeddedHome
from tests.unit.transfer.home import filled_home, open_home

INDEX = "fashion-transfer-test"
MAX_BYTES = 1024 * 1024
ALL_STATUSES = {"INDEXED": 12, "FAILED": 1, "DELETED": 1}


def aws_settings(bucket: str, table: str, fake: FakePinecone, index: str) -> Settings:
    return Settings(
        home=Home.AWS,
        aws=AwsSettings(
            region=REGION,
            bucket=bucket,
            table=table,
            pinecone_index=index,
            pinecone_api_key=fake.api_key,  # type: ignore[arg-type]
            pinecone_host=fake.host_of(index),
        ),
    )


@pytest.fixture
def source(tmp_path: Path, tiny_embedder: Any) -> Iterator[EmbeddedHome]:
    home = filled_home(tmp_path / "laptop", tiny_embedder)
    yield home
    home.close()


@pytest.fixture
def aws(
    s3_bucket: str, dynamodb_catalog_table: str, pinecone_fake: FakePinecone, tiny_embedder: Any
) -> Iterator[Stores]:
    pinecone_fake.create_index(INDEX, dimension=tiny_embedder.dim)
    settings = aws_settings(s3_bucket, dynamodb_catalog_table, pinecone_fake, INDEX)
    stores = open_stores(settings, dimension=tiny_embedder.dim)
    yield stores
    stores.close()


def every_item(stores: Stores) -> dict[str, CatalogItem]:
    return {it.image_id: it for s in ItemStatus for it in stores.catalog.by_status(s)}


def assert_same_items(a: Stores, b: Stores, *, key_prefix: str) -> None:
    """Every item of ``a`` is in ``b`` with the same status, tags, name, hash, model, embedding
    and a blob with the same bytes; every INDEXED item has an equal vector and metadata."""
    items_a, items_b = every_item(a), every_item(b)
    assert set(items_a) == set(items_b)
    for image_id, x in items_a.items():
        y = items_b[image_id]
        assert y.key == key_prefix + x.key.removeprefix(a.ingest_prefix)
        same = ("status", "tags", "tags_predicted", "display_name", "content_hash", "model_id")
        assert {f: getattr(y, f) for f in same} == {f: getattr(x, f) for f in same}, image_id
        assert y.reason == x.reason
        for name in ("embedding", "text_embedding"):  # the product document's two parts
            vx, vy = getattr(x, name), getattr(y, name)
            assert (vx is None and vy is None) or (
                vx is not None and vy is not None and np.array_equal(vx, vy)
            ), (image_id, name)
        if x.status is not ItemStatus.DELETED:
            assert b.blobs.get(y.key, max_bytes=MAX_BYTES) == a.blobs.get(
                x.key, max_bytes=MAX_BYTES
            )
    assert any(it.text_embedding is not None for it in items_a.values())  # names were embedded
    indexed = [i for i, it in items_a.items() if it.status is ItemStatus.INDEXED]
    va = a.vectors.fetch(indexed, namespace=a.namespace)
    vb = b.vectors.fetch(indexed, namespace=b.namespace)
    assert set(va) == set(vb) == set(indexed)
    for image_id in indexed:
        assert np.allclose(va[image_id].values, vb[image_id].values, atol=1e-6)
        assert {**va[image_id].metadata, "key": None} == {**vb[image_id].metadata, "key": None}
        assert vb[image_id].metadata["key"] == items_b[image_id].key


def test_migrate_to_aws_and_back_keeps_every_item_tag_and_vector(
    source: EmbeddedHome, aws: Stores, tmp_path: Path, s3_client: Any, s3_bucket: str
) -> None:
    seen: list[int] = []
    report = migrate(
        source.stores, aws, max_blob_bytes=MAX_BYTES, batch_size=5, workers=4,
        verify_sample=20, on_progress=seen.append,
    )  # fmt: skip
    assert report.ok, report.as_dict()
    assert dict(report.items_copied) == ALL_STATUSES and sum(seen) == 14
    assert (report.blobs_copied, report.vectors_copied) == (13, 12)
    verification = report.verification
    assert verification is not None and verification.sampled == 12
    assert verification.vectors_equal == 12 and verification.min_cosine is not None
    assert verification.min_cosine > 0.9999
    assert_same_items(source.stores, aws, key_prefix="images/")
    # Given tags travel as S3 user metadata too, so a re-ingest of the object finds them.
    # Rows carry the eTag of their copied object (an ingest of it can recognise it).
    for item in every_item(aws).values():
        if item.status is ItemStatus.DELETED:
            continue
        head = s3_client.head_object(Bucket=s3_bucket, Key=item.key)
        assert item.etag == head["ETag"].strip('"') and item.bucket == s3_bucket
        if item.status is ItemStatus.INDEXED and not item.tags_predicted:
            assert tags_from_user_metadata(head["Metadata"]) == (item.tags, item.display_name)
    assert any(it.tags_predicted for it in every_item(aws).values())

    back = open_home(tmp_path / "laptop-again", dimension=aws.vectors.dimension)
    try:
        again = migrate(aws, back.stores, max_blob_bytes=MAX_BYTES, verify_sample=100)
        assert again.ok, again.as_dict()
        assert dict(again.items_copied) == ALL_STATUSES
        assert_same_items(source.stores, back.stores, key_prefix="")
    finally:
        back.close()


class CountingBlobs:
    """Counts puts per key; raises (a lost connection) once ``fail_after`` puts went through."""

    def __init__(self, inner: Any, *, fail_after: int | None = None) -> None:
        self.inner, self.fail_after, self.puts = inner, fail_after, Counter[str]()

    def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        if self.fail_after is not None and sum(self.puts.values()) >= self.fail_after:
            raise ConnectionError("connection reset by peer")
        self.puts[key] += 1
        return self.inner.put(key, data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingCatalog:
    def __init__(self, inner: Any, *, fail_after: int | None = None) -> None:
        self.inner, self.fail_after, self.puts = inner, fail_after, Counter[str]()

    def put(self, item: CatalogItem) -> None:
        if self.fail_after is not None and sum(self.puts.values()) >= self.fail_after:
            raise ConnectionError("connection reset by peer")
        self.puts[item.image_id] += 1
        self.inner.put(item)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("fail_in", ["catalog", "vectors", "blobs"])
def test_an_interrupted_migration_resumes_without_duplicates(
    source: EmbeddedHome, aws: Stores, fail_in: str
) -> None:
    blobs = CountingBlobs(aws.blobs, fail_after=6 if fail_in == "blobs" else None)
    catalog = CountingCatalog(aws.catalog, fail_after=7 if fail_in == "catalog" else None)
    vectors = CountingVectors(aws.vectors)
    vectors.crash_after = 5 if fail_in == "vectors" else None
    target = Stores(blobs, catalog, vectors, aws.namespace, aws.ingest_prefix)  # type: ignore[arg-type]
    with pytest.raises((ConnectionError, KeyboardInterrupt)):
        migrate(source.stores, target, max_blob_bytes=MAX_BYTES, batch_size=4)
    with pytest.raises(InvalidInput) as refused:  # a half-filled target is not merged blindly
        migrate(source.stores, target, max_blob_bytes=MAX_BYTES)
    assert refused.value.field == "resume"

    blobs.fail_after = catalog.fail_after = vectors.crash_after = None
    report = migrate(source.stores, target, max_blob_bytes=MAX_BYTES, batch_size=4, resume=True)
    assert report.ok, report.as_dict()
    assert report.items_present > 0 and sum(report.items_copied.values()) < 14
    # Across both runs every row, vector and blob was written exactly once.
    ids = set(every_item(source.stores))
    assert set(catalog.puts) == ids and set(catalog.puts.values()) == {1}
    assert len(blobs.puts) == 13 and set(blobs.puts.values()) == {1}
    assert len(vectors.upserted) == 12 and set(vectors.upserted.values()) == {1}
    assert_same_items(source.stores, aws, key_prefix="images/")

    # Once complete, a further --resume run writes nothing at all.
    quiet = migrate(source.stores, target, max_blob_bytes=MAX_BYTES, resume=True)
    assert (sum(quiet.items_copied.values()), quiet.vectors_copied, quiet.blobs_copied) == (0, 0, 0)
    assert (quiet.items_present, quiet.vectors_present, quiet.blobs_present) == (14, 12, 13)


def test_verification_notices_a_vector_that_differs(source: EmbeddedHome, aws: Stores) -> None:
    report = migrate(source.stores, aws, max_blob_bytes=MAX_BYTES)
    assert report.ok
    victim = next(iter(aws.vectors.iter_ids(namespace=aws.namespace)))
    record = aws.vectors.fetch([victim])[victim]
    flipped = record.values.copy()
    flipped[:4] = -flipped[:4]
    aws.vectors.upsert([type(record)(victim, flipped, record.metadata)])
    aws.catalog.delete(next(i for i in every_item(aws) if i != victim))
    from fashion_search.transfer import verify

    check = verify(source.stores, aws, sample=100, settle_s=())
    assert not check.ok and check.vectors_wrong == [victim] and not check.counts_equal


# -- S3 events for copied objects ----------------------------------------------------------------


@pytest.fixture
def ingest_app(
    monkeypatch: pytest.MonkeyPatch,
    tiny_bundle: Path,
    s3_bucket: str,
    s3_client: Any,
    dynamodb_catalog_table: str,
    idempotency_table: str,
    pinecone_fake: FakePinecone,
    restore_logging: None,
) -> Iterator[tuple[ModuleType, str]]:
    """The real ingest Lambda module, fed by S3 notifications through an SQS queue."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="transfer-ingest")["QueueUrl"]
    notify_queue(s3_client, sqs, bucket=s3_bucket, queue_url=queue)
    env = aws_ingest_env(
        bundle=tiny_bundle,
        region=REGION,
        bucket=s3_bucket,
        table=dynamodb_catalog_table,
        idempotency_table=idempotency_table,
        index=INDEX,
        pinecone_api_key=pinecone_fake.api_key,
        pinecone_host=pinecone_fake.host_of(INDEX),
    )
    module = load_app(monkeypatch, env)
    yield module, queue
    close_app(module)


def drain(app: ModuleType, queue: str) -> list[dict[str, Any]]:
    """Deliver every queued message to the handler, as Lambda's SQS poller would; one response
    per message batch, with ``"messages"`` added (how many the batch held)."""
    sqs = boto3.client("sqs", region_name=REGION)
    responses = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        records = [
            {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
             "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
             "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:transfer-ingest",
             "awsRegion": REGION}
            for m in messages
        ]  # fmt: skip
        response = app.lambda_handler({"Records": records}, FakeContext())
        responses.append({**response, "messages": len(messages)})
        for m in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return responses


def test_s3_events_for_copied_objects_never_run_the_model_again(
    source: EmbeddedHome, aws: Stores, ingest_app: tuple[ModuleType, str]
) -> None:
    app, queue = ingest_app
    embedded: list[Sequence[Any]] = []
    embedder = app.INGESTOR.embedder
    original = embedder.embed_images

    def counting(images: Sequence[Any]) -> Any:
        embedded.append(images)
        return original(images)

    embedder.embed_images = counting
    report = migrate(source.stores, aws, max_blob_bytes=MAX_BYTES)
    assert report.ok, report.as_dict()
    responses = drain(app, queue)
    assert responses and all(r["batchItemFailures"] == [] for r in responses)
    # One event per copied object (plus S3's test event at most): ingest writes no blobs, so
    # nothing loops, and the queue stays empty afterwards.
    assert 13 <= sum(r["messages"] for r in responses) <= 14
    assert drain(app, queue) == []
    # Only the corrupt file (FAILED at the source) reaches the decoder again, and fails again.
    broken = source.stores.blobs.get("broken.jpg", max_bytes=MAX_BYTES)
    assert [bytes(i) for batch in embedded for i in batch] == [broken]
    assert_same_items(source.stores, aws, key_prefix="images/")


def test_reindex_switches_an_embedded_index_to_pinecone(
    source: EmbeddedHome, pinecone_fake: FakePinecone, tiny_embedder: Any
) -> None:
    pinecone_fake.create_index(INDEX, dimension=tiny_embedder.dim)
    pinecone = PineconeVectorIndex(
        INDEX, api_key=pinecone_fake.api_key, dimension=tiny_embedder.dim,
        host=pinecone_fake.host_of(INDEX),
    )  # fmt: skip
    switched = Stores(source.stores.blobs, source.stores.catalog, pinecone, "", "")
    try:
        report = reindex(switched, model_id=tiny_embedder.model_id, batch_size=5)
        assert report.rebuilt == 12
        for text in ("red shirt", "blue jeans", "white dress"):
            vector = tiny_embedder.embed_texts([text])[0]
            for flt in (None, {"baseColour": {"$in": ["Red", "Blue"]}}):
                want = source.stores.vectors.query(vector, top_k=4, filter=flt)
                got = pinecone.query(vector, top_k=4, filter=flt)
                assert [m.id for m in got] == [m.id for m in want]
                assert np.allclose([m.score for m in got], [m.score for m in want], atol=1e-5)
                assert [m.metadata for m in got] == [m.metadata for m in want]
    finally:
        pinecone.close()


def test_cli_migrates_to_aws_resumes_and_comes_back(
    source: EmbeddedHome,
    tmp_path: Path,
    tiny_bundle: Path,
    s3_bucket: str,
    dynamodb_catalog_table: str,
    pinecone_fake: FakePinecone,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fashion_search.cli import main

    pinecone_fake.create_index(INDEX, dimension=16)
    env = {
        "FASHION_SEARCH_MODEL__BUNDLE": str(tiny_bundle),
        "FASHION_SEARCH_AWS__REGION": REGION,
        "FASHION_SEARCH_AWS__BUCKET": s3_bucket,
        "FASHION_SEARCH_AWS__TABLE": dynamodb_catalog_table,
        "FASHION_SEARCH_AWS__PINECONE_INDEX": INDEX,
        "FASHION_SEARCH_AWS__PINECONE_API_KEY": pinecone_fake.api_key,
        "FASHION_SEARCH_AWS__PINECONE_HOST": pinecone_fake.host_of(INDEX),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    laptop = str(source.settings.embedded.data_dir)

    def run(*argv: str) -> dict[str, Any]:
        main(list(argv))
        out = capsys.readouterr().out
        return json.loads(out[out.index("{") :])  # type: ignore[no-any-return]

    summary = run("migrate", "--to", "aws", "--from-data-dir", laptop, "--verify-sample", "5")
    assert summary["ok"] and summary["items_copied"] == ALL_STATUSES
    assert summary["verification"]["counts_equal"] and summary["verification"]["sampled"] == 5

    with pytest.raises(SystemExit) as refused:
        main(["migrate", "--to", "aws", "--from-data-dir", laptop])
    assert refused.value.code == 2 and "--resume" in capsys.readouterr().err
    summary = run("migrate", "--to", "aws", "--from-data-dir", laptop, "--resume")
    assert summary["ok"] and summary["items_copied"] == {} and summary["items_present"] == 14

    out_json = tmp_path / "back.json"
    back = str(tmp_path / "laptop-2")
    summary = run("migrate", "--to", "embedded", "--to-data-dir", back, "--json", str(out_json))
    assert summary["ok"] and json.loads(out_json.read_text()) == summary
    restored = open_home(Path(back), dimension=16)
    try:
        assert_same_items(source.stores, restored.stores, key_prefix="")
    finally:
        restored.close()
