"""The backfill's pure parts: what each catalog state decides, the event it sends (read back by
the ingest parser), and how SendMessageBatch results are handled (botocore's Stubber)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from fashion_search.ingest.backfill.messages import SqsSender, _batches, backfill_event
from fashion_search.ingest.backfill.run import (
    ZERO_TOKEN,
    Listed,
    Reason,
    Skip,
    decide,
    next_token,
)
from fashion_search.ingest.events import EventKind, hex_token, parse_sqs_body
from fashion_search.types import CatalogItem, ItemStatus

OBJ = Listed(key="images/a.jpg", etag="e1", size=10)
TOKEN = hex_token(0x55AED6DCD90281E5)
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/ingest"


def row(status: ItemStatus, *, etag: str | None = "e1", token: str = TOKEN, model: str = "m1"):
    return CatalogItem(
        image_id="a",
        key=OBJ.key,
        status=status,
        etag=etag,
        ordering_token=token,
        model_id=model,
    )


def verdict(cur: CatalogItem | None, **kw: object) -> object:
    args = {"model_id": "m1", "queue_busy": False, "retry_failed": False} | kw
    return decide(OBJ, cur, **args)  # type: ignore[arg-type]


def test_each_catalog_state_decides_once() -> None:
    assert verdict(None) == (Reason.NEW, ZERO_TOKEN, True)
    assert verdict(row(ItemStatus.INDEXED)) is Skip.INDEXED
    assert verdict(row(ItemStatus.INDEXED, etag="e0")) == (Reason.CHANGED, TOKEN, False)
    assert verdict(row(ItemStatus.INDEXED, model="m0")) == (Reason.OTHER_MODEL, TOKEN, False)
    # Without a model id the model is not compared.
    assert verdict(row(ItemStatus.INDEXED, model="m0"), model_id=None) is Skip.INDEXED
    assert verdict(row(ItemStatus.FAILED)) is Skip.FAILED
    assert verdict(row(ItemStatus.FAILED), retry_failed=True) == (
        Reason.RETRY_FAILED,
        next_token(TOKEN),
        False,
    )
    assert verdict(row(ItemStatus.FAILED, etag="e0")) == (Reason.CHANGED, TOKEN, False)
    assert verdict(row(ItemStatus.DELETED)) == (Reason.TOMBSTONED, next_token(TOKEN), False)
    # PENDING with the listed eTag: in flight while the queue holds messages, else stuck.
    assert verdict(row(ItemStatus.PENDING), queue_busy=True) is Skip.IN_FLIGHT
    assert verdict(row(ItemStatus.PENDING)) == (Reason.STUCK, TOKEN, False)
    assert verdict(row(ItemStatus.PENDING, etag="e0"), queue_busy=True) == (
        Reason.STUCK,
        TOKEN,
        False,
    )
    # The loader's row (token ""): queued as new with a marker, which keeps its tags.
    assert verdict(row(ItemStatus.PENDING, etag=None, token=""), queue_busy=True) == (
        Reason.NEW,
        ZERO_TOKEN,
        True,
    )


def test_tokens_never_outrank_a_later_real_event() -> None:
    later = hex_token(0x55AED6DCD90281E6)  # the next sequencer S3 could give this key
    assert "" < ZERO_TOKEN < TOKEN < next_token(TOKEN) <= later
    assert len(next_token(TOKEN)) == len(TOKEN) == 32
    assert next_token("") == hex_token(1)


@pytest.mark.parametrize("key", ["images/a.jpg", "images/red flower é.jpg", "images/a+b%c.png"])
def test_the_event_reads_back_as_the_s3_event_it_imitates(key: str) -> None:
    body = backfill_event(
        bucket="bkt", region="eu-west-1", key=key, etag="abc", size=42, sequencer=TOKEN
    )
    record = json.loads(body)["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["arn"] == "arn:aws:s3:::bkt"
    assert " " not in record["s3"]["object"]["key"]  # form-encoded, as S3 sends it
    (event,) = parse_sqs_body(body, message_id="m")
    assert event.kind is EventKind.CREATED and event.key == key and event.bucket == "bkt"
    assert event.etag == "abc" and event.size == 42 and event.ordering_token == TOKEN


def test_batches_respect_ten_entries_and_256_kib() -> None:
    small = {f"k{i}": "x" for i in range(25)}
    assert [len(b) for b in _batches(small)] == [10, 10, 5]
    big = {f"k{i}": "x" * 100_000 for i in range(5)}
    assert [len(b) for b in _batches(big)] == [2, 2, 1]


def test_failed_entries_are_retried_unless_the_sender_is_at_fault() -> None:
    client = boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    bodies = {"images/a.jpg": "{}", "images/b.jpg": "{}", "images/c.jpg": "{}"}
    with Stubber(client) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "m0", "MessageId": "1", "MD5OfMessageBody": "x"}],
                "Failed": [
                    {"Id": "m1", "SenderFault": False, "Code": "InternalError"},
                    {"Id": "m2", "SenderFault": True, "Code": "InvalidMessageContents"},
                ],
            },
        )
        stub.add_response(
            "send_message_batch",
            {"Successful": [{"Id": "m1", "MessageId": "2", "MD5OfMessageBody": "x"}], "Failed": []},
            {"QueueUrl": QUEUE, "Entries": [{"Id": "m1", "MessageBody": "{}"}]},
        )
        failures = SqsSender(client, QUEUE, backoff_s=0).send(bodies)
        stub.assert_no_pending_responses()
    assert [(f.key, f.reason.split(":")[0]) for f in failures] == [
        ("images/c.jpg", "InvalidMessageContents")
    ]


def test_entries_failing_every_attempt_are_reported() -> None:
    client = boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(client) as stub:
        for _ in range(5):
            stub.add_response(
                "send_message_batch",
                {"Successful": [], "Failed": [{"Id": "m0", "SenderFault": False, "Code": "Busy"}]},
            )
        failures = SqsSender(client, QUEUE, backoff_s=0).send({"images/a.jpg": "{}"})
    assert [f.key for f in failures] == ["images/a.jpg"]


def test_the_command_names_what_is_missing_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fashion_search.cli import main

    for name in ("BUCKET", "TABLE", "INGEST_QUEUE_URL"):
        monkeypatch.delenv(f"FASHION_SEARCH_AWS__{name}", raising=False)
    monkeypatch.setenv("FASHION_SEARCH_AWS__BUCKET", "bkt")
    with pytest.raises(SystemExit) as exited:
        main(["aws", "backfill", "--dry-run"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "FASHION_SEARCH_AWS__TABLE" in err and "FASHION_SEARCH_AWS__INGEST_QUEUE_URL" in err
    assert "Traceback" not in err

    monkeypatch.setenv("FASHION_SEARCH_AWS__TABLE", "tbl")
    monkeypatch.setenv("FASHION_SEARCH_AWS__INGEST_QUEUE_URL", QUEUE)
    with pytest.raises(SystemExit) as exited:
        main(["aws", "backfill", "--prefix", "thumbnails/"])
    assert exited.value.code == 2
    assert "outside the ingest prefix 'images/'" in capsys.readouterr().err
