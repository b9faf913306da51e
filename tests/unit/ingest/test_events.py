from __future__ import annotations

import json

import pytest
from fashion_search.errors import InvalidInput
from fashion_search.ingest import EventKind, parse_s3_event, parse_sqs_body
from fashion_search.ingest.events import (
    BlobEvent,
    hex_token,
    is_sqs_event,
    latest_per_image,
    sequencer_token,
)


def _record(key: str, *, name: str = "ObjectCreated:Put", **obj: object) -> dict[str, object]:
    return {
        "eventSource": "aws:s3",
        "eventName": name,
        "eventTime": "2026-11-29T12:00:00.123Z",
        "s3": {"bucket": {"name": "shop"}, "object": {"key": key, **obj}},
    }


def test_keys_are_url_decoded() -> None:
    (ev,) = parse_s3_event({"Records": [_record("tops/red+flower+%C3%A9.jpg", size=10)]})
    assert ev.key == "tops/red flower é.jpg"
    assert (ev.kind, ev.bucket, ev.size) == (EventKind.CREATED, "shop", 10)


def test_etag_quotes_stripped_and_version_kept() -> None:
    (ev,) = parse_s3_event(
        {"Records": [_record("a.jpg", eTag='"abc"', versionId="v1", sequencer="0A")]}
    )
    assert (ev.etag, ev.version_id) == ("abc", "v1")


def test_sequencers_of_different_lengths_order_correctly() -> None:
    # S3: left-pad the shorter sequencer with zeros, then compare lexicographically.
    short, long = sequencer_token("FF"), sequencer_token("0100")
    assert long > short
    assert sequencer_token("0055AED6DCD90281E5") < sequencer_token("0055AED6DCD90281E6")


def test_missing_sequencer_falls_back_to_event_time() -> None:
    early = parse_s3_event({"Records": [_record("a.jpg")]})[0]
    rec = _record("a.jpg")
    rec["eventTime"] = "2026-11-29T12:00:01.000Z"
    late = parse_s3_event({"Records": [rec]})[0]
    assert late.ordering_token > early.ordering_token


def test_removed_and_unrelated_events() -> None:
    records = [
        _record("a.jpg", name="ObjectRemoved:Delete", sequencer="10"),
        _record("b.jpg", name="ObjectRemoved:DeleteMarkerCreated", sequencer="11"),
        _record("c.jpg", name="ObjectRestore:Completed"),
    ]
    events = parse_s3_event({"Records": records})
    assert [(e.kind, e.key) for e in events] == [
        (EventKind.REMOVED, "a.jpg"),
        (EventKind.REMOVED, "b.jpg"),
    ]


def test_s3_test_event_is_skipped() -> None:
    body = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "shop"}
    assert parse_s3_event(body) == []
    assert parse_sqs_body(json.dumps(body), message_id="m1") == []


def test_sqs_body_events_carry_the_message_id() -> None:
    body = json.dumps({"Records": [_record("a.jpg", sequencer="01")]})
    (ev,) = parse_sqs_body(body, message_id="m-42")
    assert ev.source_id == "m-42"


@pytest.mark.parametrize("body", ["not json", "[1, 2]", json.dumps({"Records": [{"x": 1}]})])
def test_unreadable_bodies_raise_a_named_error(body: str) -> None:
    with pytest.raises(InvalidInput):
        parse_sqs_body(body, message_id="m1")


def test_is_sqs_event() -> None:
    assert is_sqs_event({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})
    assert not is_sqs_event({"Records": [_record("a.jpg")]})


def test_latest_per_image_keeps_the_newest_and_remove_wins_ties() -> None:
    c1 = BlobEvent(EventKind.CREATED, "a.jpg", ordering_token=hex_token(1))
    c2 = BlobEvent(EventKind.CREATED, "a.jpg", ordering_token=hex_token(2))
    r2 = BlobEvent(EventKind.REMOVED, "a.jpg", ordering_token=hex_token(2))
    other = BlobEvent(EventKind.CREATED, "b.jpg", ordering_token=hex_token(1))
    newest, superseded = latest_per_image(list(enumerate([c2, other, r2, c1])), "")
    assert newest == [(1, other), (2, r2)]
    assert sorted(i for i, _ in superseded) == [0, 3]
