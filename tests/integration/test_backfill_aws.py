"""``aws backfill`` end to end, locally: a moto bucket that already holds a few thousand tiny
images (some indexed, some FAILED, some deleted, most missing), the command as users run it,
then a poller standing in for Lambda's SQS event source drains the queue into the real ingest
handler module, which writes to the DynamoDB catalog (moto) and Pinecone (the SDK against the
local Pinecone API server). No S3 notification is configured: these objects predate the stack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from fashion_search.cli import main
from fashion_search.ingest.backfill.messages import SqsSender
from fashion_search.ingest.backfill.run import ZERO_TOKEN, Backfill
from fashion_search.ingest.events import hex_token
from fashion_search.stores.aws.dynamodb_items import encode_item
from fashion_search.stores.pinecone_index import remote_id
from fashion_search.types import CatalogItem, ItemStatus

from tests.fakes.pinecone_api import FakePinecone
from tests.fixtures.aws import REGION
from tests.fixtures.ingest import (
    aws_ingest_env,
    close_app,
    jpeg_bytes,
    load_app,
    queue_arn,
)
from tests.fixtures.ingest import (
    poll_lambda as poll,
)

INDEX = "fashion-backfill-test"
MAX_RECEIVES = 3
SENTINEL = [1.0] * 16  # the vector seeded for images indexed before the backfill


@pytest.fixture
def queues(moto_aws: None) -> dict[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
    redrive = {"deadLetterTargetArn": queue_arn(sqs, dlq), "maxReceiveCount": str(MAX_RECEIVES)}
    queue = sqs.create_queue(
        QueueName="ingest",
        Attributes={"VisibilityTimeout": "0", "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
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
    # What `eval "$(fashion-search aws env)"` gives the operator's shell.
    monkeypatch.setenv("FASHION_SEARCH_AWS__INGEST_QUEUE_URL", queues["queue"])
    module = load_app(monkeypatch, env)
    yield module
    close_app(module)


def drain(app: ModuleType, queue_url: str, *, max_polls: int = 2000) -> int:
    """Poll until the queue is empty; the number of records the handler reported as failed."""
    reported = 0
    for _ in range(max_polls):
        response = poll(app, queue_url)
        if response is None:
            return reported
        reported += len(response["batchItemFailures"])
    raise AssertionError("the queue did not drain")


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class Bucket:
    """Puts objects into the moto bucket and seeds the catalog/index as earlier runs would."""

    def __init__(self, app: ModuleType, s3: Any, bucket: str, pinecone: FakePinecone) -> None:
        self.app, self.s3, self.bucket, self.pinecone = app, s3, bucket, pinecone
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.table = app.INGESTOR.stores.catalog.table_name
        self.model_id = app.INGESTOR.embedder.model_id
        self.rows: list[CatalogItem] = []

    def put(
        self, image_id: str, seed: int, *, suffix: str = ".jpg", body: bytes | None = None
    ) -> tuple[str, str]:
        data = jpeg_bytes(seed, size=8) if body is None else body
        key = f"images/{image_id}{suffix}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return key, md5(data)

    def row(self, image_id: str, status: ItemStatus, **kw: Any) -> None:
        kw.setdefault("key", f"images/{image_id}.jpg")
        self.rows.append(CatalogItem(image_id=image_id, status=status, bucket=self.bucket, **kw))
        if status is ItemStatus.INDEXED:
            space = self.pinecone.indexes[INDEX].namespaces.setdefault("", {})
            space[image_id] = (list(SENTINEL), {})

    def flush(self) -> None:
        for start in range(0, len(self.rows), 25):
            requests = [{"PutRequest": {"Item": encode_item(r)}} for r in self.rows[start:][:25]]
            self.ddb.batch_write_item(RequestItems={self.table: requests})
        self.rows = []


def status_of(app: ModuleType, image_id: str) -> ItemStatus | None:
    item = app.INGESTOR.stores.catalog.get(image_id)
    return None if item is None else item.status


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    main(["aws", "backfill", *args])
    out = capsys.readouterr().out
    return dict(json.loads(out))


def test_backfill_indexes_exactly_what_is_missing_and_a_rerun_does_nothing(
    app: ModuleType,
    s3_client: Any,
    s3_bucket: str,
    queues: dict[str, str],
    pinecone_fake: FakePinecone,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b = Bucket(app, s3_client, s3_bucket, pinecone_fake)
    indexed = [f"done-{i}" for i in range(1400)]
    missing = [f"new-{i}" for i in range(80)] + ["red flower é"]
    for n, iid in enumerate(indexed):
        _, etag = b.put(iid, n)
        b.row(
            iid, ItemStatus.INDEXED, etag=etag, model_id=b.model_id, ordering_token=hex_token(0xA)
        )
    for n, iid in enumerate(missing):
        b.put(iid, 5000 + n)
    # FAILED earlier with these very bytes: not retried. FAILED, then replaced: retried.
    _, bad_etag = b.put("bad", 1, body=b"not an image")
    b.row(
        "bad",
        ItemStatus.FAILED,
        etag=bad_etag,
        reason="not an image",
        ordering_token=hex_token(0xB),
    )
    _, fixed_etag = b.put("fixed", 9001)
    b.row(
        "fixed", ItemStatus.FAILED, etag="0" * 32, reason="truncated", ordering_token=hex_token(0xB)
    )
    # Indexed, then the object was overwritten while no notification was configured.
    b.put("changed", 9002)
    b.row(
        "changed",
        ItemStatus.INDEXED,
        etag="1" * 32,
        model_id=b.model_id,
        ordering_token=hex_token(0xC),
    )
    # Deleted images: tombstones with no object, and an indexed row whose object is gone.
    b.row("gone", ItemStatus.DELETED, ordering_token=hex_token(0xD))
    b.row(
        "vanished",
        ItemStatus.INDEXED,
        etag="2" * 32,
        model_id=b.model_id,
        ordering_token=hex_token(0xD),
    )
    # Deleted, then put back while no notification was configured: the tombstone must yield.
    b.put("back", 9004)
    b.row("back", ItemStatus.DELETED, ordering_token=hex_token(0xE))
    # A loader row (tags, token "") whose upload happened before the stack existed.
    b.put("loaded", 9003)
    b.row("loaded", ItemStatus.PENDING, tags={"articleType": "Shirts"}, display_name="Blue shirt")
    # Objects ingest will refuse: it marks them FAILED, never retried.
    b.put("empty", 0, body=b"")
    b.flush()
    expected_new = {*missing, "loaded", "empty"}
    expected = expected_new | {"fixed", "changed", "back"}

    dry = run_cli(capsys, "--dry-run")
    assert dry["would_queue_total"] == len(expected)
    assert dry["skipped"] == {"already indexed": 1400, "failed earlier (same eTag)": 1}
    assert (
        boto3.client("sqs", region_name=REGION).get_queue_attributes(
            QueueUrl=queues["queue"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    assert status_of(app, "new-0") is None  # a dry run writes nothing

    report = run_cli(capsys)
    assert report["queued"] == {
        "new": len(expected_new),
        "changed": 2,
        "tombstoned but present": 1,
    }
    assert report["failed"]["count"] == 0
    assert report["estimate"]["images"] == len(expected)
    assert drain(app, queues["queue"]) == 0

    for iid in expected - {"empty"}:
        assert status_of(app, iid) is ItemStatus.INDEXED, iid
    empty = app.INGESTOR.stores.catalog.get("empty")
    assert empty is not None and empty.status is ItemStatus.FAILED and empty.reason
    assert status_of(app, "bad") is ItemStatus.FAILED
    assert status_of(app, "gone") is ItemStatus.DELETED
    space = pinecone_fake.indexes[INDEX].namespaces[""]
    # Exactly the missing ones were embedded and upserted; the indexed ones were not touched.
    assert all(space[i][0] == SENTINEL for i in indexed)
    assert all(space[remote_id(i)][0] != SENTINEL for i in expected - {"empty"})
    assert "bad" not in space and "empty" not in space
    assert space["loaded"][1]["articleType"] == "Shirts"
    assert space["loaded"][1]["display_name"] == "Blue shirt"
    dead = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=queues["dlq"], WaitTimeSeconds=0
    )
    assert "Messages" not in dead

    again = run_cli(capsys)
    assert again["queued_total"] == 0
    assert again["skipped"]["already indexed"] == 1400 + len(expected) - 1
    assert poll(app, queues["queue"]) is None

    # Asked to, it retries what failed: the same bytes fail the same way, once, no DLQ.
    retried = run_cli(capsys, "--retry-failed")
    assert retried["queued"] == {"failed earlier, retried": 2}  # "bad" and "empty"
    assert drain(app, queues["queue"]) == 0
    bad = app.INGESTOR.stores.catalog.get("bad")
    assert bad is not None and bad.status is ItemStatus.FAILED and bad.reason
    assert run_cli(capsys)["queued_total"] == 0


def test_an_interrupted_backfill_resumes_without_queueing_twice(
    app: ModuleType,
    s3_client: Any,
    s3_bucket: str,
    queues: dict[str, str],
    pinecone_fake: FakePinecone,
) -> None:
    b = Bucket(app, s3_client, s3_bucket, pinecone_fake)
    ids = [f"img-{i:04d}" for i in range(300)]
    for n, iid in enumerate(ids):
        b.put(iid, n)
    sqs = boto3.client("sqs", region_name=REGION)
    stores = app.INGESTOR.stores

    def backfill() -> Backfill:
        return Backfill(
            s3=s3_client,
            catalog=stores.catalog,
            sender=SqsSender(sqs, queues["queue"]),
            bucket=s3_bucket,
            region=REGION,
            ingest_prefix="images/",
            workers=4,
        )

    queued: list[int] = []

    def interrupt(listed: int, n: int) -> None:
        queued.append(n)
        if sum(queued) >= 120:
            raise KeyboardInterrupt  # Ctrl-C while the first run is enqueueing

    with pytest.raises(KeyboardInterrupt):
        backfill().run(on_progress=interrupt)
    in_queue = int(
        sqs.get_queue_attributes(
            QueueUrl=queues["queue"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    markers = list(stores.catalog.by_status(ItemStatus.PENDING))
    # The run stopped part-way, and every queued marker has its message (and the reverse).
    assert 120 <= in_queue < len(ids)
    assert len(markers) == in_queue and {m.ordering_token for m in markers} == {ZERO_TOKEN}

    # Resumed while the first run's messages are still in flight: only the rest is queued.
    resumed = backfill().run()
    assert resumed.queue_busy
    assert resumed.queued_total == len(ids) - in_queue
    assert resumed.skipped["queued earlier, still in flight"] == in_queue
    total = sqs.get_queue_attributes(
        QueueUrl=queues["queue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert int(total) == len(ids)  # each image queued exactly once over both runs
    assert {m.image_id for m in stores.catalog.by_status(ItemStatus.PENDING)} == set(ids)
    # The queue is empty now (messages taken, as if lost): PENDING rows are no longer
    # "in flight", so the next run queues them again instead of leaving them stuck.
    sqs.purge_queue(QueueUrl=queues["queue"])
    again = backfill().run(dry_run=True)
    assert again.queued == {"pending, not in flight": len(ids)}


def test_throttling_is_retried_and_never_marked_failed(
    app: ModuleType,
    s3_client: Any,
    s3_bucket: str,
    queues: dict[str, str],
    pinecone_fake: FakePinecone,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from botocore.awsrequest import AWSResponse
    from botocore.retries import standard

    b = Bucket(app, s3_client, s3_bucket, pinecone_fake)
    ids = [f"t-{i}" for i in range(30)]
    for n, iid in enumerate(ids):
        b.put(iid, n)
    # botocore's real retry logic, without its real (up to 20 s) sleeps.
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.001)
    throttles = {"left": 12}

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: Any) -> Iterator[bytes]:
            yield self.body

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        if throttles["left"] <= 0:
            return None
        throttles["left"] -= 1
        body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
        body += b'"message":"Rate of requests exceeds the allowed throughput."}'
        headers = {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/json"}
        return AWSResponse(request.url, 400, headers, Raw(body))

    catalog_client = app.INGESTOR.stores.catalog._client
    catalog_client.meta.events.register("before-send.dynamodb.UpdateItem", throttle)
    # Pinecone answers 429 to more upserts than the SDK retries (1 + 3): a batch goes back.
    pinecone_fake.fail_next("/vectors/upsert", times=6, status=429, retry_after="0")

    report = run_cli(capsys)
    assert report["queued_total"] == len(ids)
    reported = drain(app, queues["queue"])
    assert reported > 0  # some records went back to the queue (partial batch response)...
    assert throttles["left"] == 0 and pinecone_fake.count("/vectors/upsert") >= 6
    catalog = app.INGESTOR.stores.catalog
    assert catalog.count(ItemStatus.FAILED) == 0  # ...and none was marked FAILED
    assert catalog.count(ItemStatus.INDEXED) == len(ids)
    assert len(pinecone_fake.indexes[INDEX].namespaces[""]) == len(ids)
    dead = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=queues["dlq"], WaitTimeSeconds=0
    )
    assert "Messages" not in dead


def test_bulk_load_into_aws_uploads_once_and_lets_the_cloud_embed(
    app: ModuleType,
    s3_client: Any,
    s3_bucket: str,
    queues: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.fixtures.ingest import notify_queue

    sqs = boto3.client("sqs", region_name=REGION)
    notify_queue(s3_client, sqs, bucket=s3_bucket, queue_url=queues["queue"])
    sqs.purge_queue(QueueUrl=queues["queue"])  # the s3:TestEvent
    images = tmp_path / "images"
    images.mkdir()
    lines = []
    for i in range(40):
        (images / f"{1000 + i}.jpg").write_bytes(jpeg_bytes(i, size=8))
        lines.append(f"{1000 + i},Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Shirt {i}")
    styles = tmp_path / "styles.csv"
    header = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    styles.write_text(header + "productDisplayName\n" + "\n".join(lines) + "\n", encoding="utf-8")
    # No model on this machine: the upload must not need one (the cloud embeds).
    monkeypatch.setenv("FASHION_SEARCH_MODEL__BUNDLE", str(tmp_path / "no-model-here"))

    def load(*extra: str) -> dict[str, Any]:
        capsys.readouterr()
        main(["load", str(styles), str(images), *extra])
        return dict(json.loads(capsys.readouterr().out)["load"])

    def messages() -> int:
        attrs = sqs.get_queue_attributes(
            QueueUrl=queues["queue"], AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])

    assert load("--limit", "15")["loaded"] == 15  # the first run stopped after 15 rows
    again = load()  # the rerun uploads only the rest: one S3 event per image, no more
    assert (again["loaded"], again["unchanged"]) == (25, 15)
    assert messages() == 40
    assert drain(app, queues["queue"]) == 0
    catalog = app.INGESTOR.stores.catalog
    assert catalog.count(ItemStatus.INDEXED) == 40
    item = catalog.get("1007")
    assert item is not None and item.display_name == "Shirt 7" and item.tags["baseColour"] == "Blue"
    final = load()  # nothing uploaded, so nothing is embedded again
    assert (final["loaded"], final["unchanged"]) == (0, 40)
    assert messages() == 0


def test_the_pinecone_server_answers_429_past_its_rate_limit(pinecone_fake: FakePinecone) -> None:
    """What the throttling tests can lean on: Pinecone's per-namespace request limit, as a 429
    with its error body, lifted once the window is over."""
    import time
    import urllib.error
    import urllib.request

    pinecone_fake.create_index(INDEX, dimension=2)
    pinecone_fake.rate_limit("/vectors/upsert", per_second=2, window_s=3.0)
    body = json.dumps({"vectors": [{"id": "a", "values": [1.0, 0.0]}]}).encode()

    def upsert() -> int:
        request = urllib.request.Request(
            pinecone_fake.host_of(INDEX) + "/vectors/upsert",
            data=body,
            headers={"Api-Key": pinecone_fake.api_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            assert json.loads(exc.read())["code"] == 8  # RESOURCE_EXHAUSTED
            return int(exc.code)

    assert [upsert(), upsert(), upsert()] == [200, 200, 429]
    assert pinecone_fake.throttled == 1
    time.sleep(3.05)  # the window is over: let through again
    assert upsert() == 200


def test_what_cannot_be_queued_is_named_and_the_exit_is_non_zero(
    s3_client: Any,
    s3_bucket: str,
    dynamodb_catalog_table: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    for name, value in {
        "HOME": "aws",
        "AWS__REGION": REGION,
        "AWS__BUCKET": s3_bucket,
        "AWS__TABLE": dynamodb_catalog_table,
    }.items():
        monkeypatch.setenv(f"FASHION_SEARCH_{name}", value)
    for i in range(3):
        s3_client.put_object(Bucket=s3_bucket, Key=f"images/{i}.jpg", Body=jpeg_bytes(i, size=8))

    def backfill(queue_url: str) -> tuple[int, str, str]:
        monkeypatch.setenv("FASHION_SEARCH_AWS__INGEST_QUEUE_URL", queue_url)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["aws", "backfill"])
        out, err = capsys.readouterr()
        return int(str(exited.value.code)), out, err

    # A queue that refuses the messages (a FIFO queue wants a MessageGroupId): exit 1, named.
    fifo = sqs.create_queue(QueueName="wrong.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    code, out, err = backfill(fifo)
    assert code == 1 and "3 object(s) could not be queued" in err and "Traceback" not in err
    report = json.loads(out)
    assert report["failed"]["count"] == 3
    assert {f["key"] for f in report["failed"]["sample"]} == {f"images/{i}.jpg" for i in range(3)}

    # A queue that does not exist: one readable line, exit 2, before anything is written.
    code, _, err = backfill(fifo.replace("wrong.fifo", "missing"))
    assert code == 2 and "Traceback" not in err
    assert "error: SQS reading" in err and "queue does not exist" in err

    # A bucket that does not exist (or cannot be listed): the same.
    monkeypatch.setenv("FASHION_SEARCH_AWS__BUCKET", "no-such-bucket-here")
    code, _, err = backfill(sqs.create_queue(QueueName="fine")["QueueUrl"])
    assert code == 2 and "error: S3 listing s3://no-such-bucket-here/images/" in err
