"""Blob events: what ingest is told, whatever told it (S3 via SQS, a plain S3 event, the folder
watcher, reconcile). Parsing is pure: dicts in, ``BlobEvent``s out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from fashion_search.errors import InvalidInput
from fashion_search.types import image_id_for_key

# Every ordering token is 32 upper-case hex digits, so plain string comparison orders them (the
# catalog compares tokens as strings). S3 sequencers "can be of different lengths ... first left
# pad the shorter value with zeros, and then do a lexicographical comparison" (S3 user guide,
# "Event message structure").
TOKEN_WIDTH = 32


class EventKind(StrEnum):
    CREATED = "created"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class BlobEvent:
    kind: EventKind
    key: str
    bucket: str | None = None
    etag: str | None = None
    version_id: str | None = None
    # Orders events for one key (see TOKEN_WIDTH); "" is the lowest (the loader's rows).
    ordering_token: str = ""
    size: int | None = None
    # Where it came from, so a batch response can name the failed message (SQS message id).
    source_id: str | None = None

    def image_id(self, prefix: str = "") -> str:
        return image_id_for_key(self.key, prefix)

    def idempotency_data(self) -> dict[str, str]:
        """What makes two deliveries "the same event": bucket, key, eTag/versionId, plus kind and
        ordering token so a delete, or a re-upload of identical bytes, is not mistaken for a
        replay of the earlier create."""
        return {
            "bucket": self.bucket or "",
            "key": self.key,
            "etag": self.etag or "",
            "version_id": self.version_id or "",
            "kind": self.kind.value,
            "ordering_token": self.ordering_token,
        }


def hex_token(value: int) -> str:
    """An ordering token from a non-negative integer (mtime_ns, epoch µs)."""
    return f"{value:0{TOKEN_WIDTH}X}"


def sequencer_token(sequencer: str) -> str:
    return sequencer.strip().upper().rjust(TOKEN_WIDTH, "0")


def time_token(event_time: str) -> str:
    """Fallback when an event has no sequencer (moto omits it): its eventTime in µs."""
    stamp = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    return hex_token(int(stamp.timestamp() * 1_000_000))


def is_s3_test_event(body: Mapping[str, Any]) -> bool:
    """S3 sends ``{"Event": "s3:TestEvent", ...}`` when a notification is configured."""
    return body.get("Event") == "s3:TestEvent"


def _kind(event_name: str) -> EventKind | None:
    name = event_name.removeprefix("s3:")
    if name.startswith("ObjectCreated:"):
        return EventKind.CREATED
    if name.startswith("ObjectRemoved:"):
        return EventKind.REMOVED
    return None  # restore, replication, lifecycle transitions: nothing for the index to do


def parse_s3_record(record: Mapping[str, Any], *, source_id: str | None = None) -> BlobEvent | None:
    """One record of an S3 notification, or None when it is not a create/remove."""
    try:
        kind = _kind(str(record["eventName"]))
        s3 = record["s3"]
        obj = s3["object"]
        raw_key = str(obj["key"])
        bucket = str(s3["bucket"]["name"])
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"malformed S3 event record: missing {exc}") from exc
    if kind is None:
        return None
    sequencer = obj.get("sequencer")
    if sequencer:
        token = sequencer_token(str(sequencer))
    elif record.get("eventTime"):
        token = time_token(str(record["eventTime"]))
    else:
        token = ""
    etag = obj.get("eTag") or obj.get("etag")
    size = obj.get("size")
    return BlobEvent(
        kind=kind,
        # Keys arrive form-encoded ("red+flower.jpg"); moto sends them raw, which decodes to
        # itself unless the key holds "+" or "%".
        key=unquote_plus(raw_key),
        bucket=bucket,
        etag=str(etag).strip('"') if etag else None,
        version_id=str(obj["versionId"]) if obj.get("versionId") else None,
        ordering_token=token,
        size=int(size) if size is not None else None,
        source_id=source_id,
    )


def parse_s3_event(event: Mapping[str, Any], *, source_id: str | None = None) -> list[BlobEvent]:
    """Every create/remove in an S3 notification (``{"Records": [...]}``); none for a test
    event."""
    if is_s3_test_event(event):
        return []
    records = event.get("Records")
    if not isinstance(records, list):
        raise InvalidInput("not an S3 event: no Records list")
    parsed = (parse_s3_record(r, source_id=source_id) for r in records)
    return [e for e in parsed if e is not None]


def parse_sqs_body(body: str, *, message_id: str) -> list[BlobEvent]:
    """An SQS message whose body is an S3 notification (S3 -> SQS)."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"SQS message {message_id} is not JSON: {exc.msg}") from exc
    if not isinstance(payload, dict):
        raise InvalidInput(f"SQS message {message_id} is not a JSON object")
    return parse_s3_event(payload, source_id=message_id)


def is_sqs_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], Mapping)
        and records[0].get("eventSource") == "aws:sqs"
    )


def folder_created(key: str, *, mtime_ns: int, size: int) -> BlobEvent:
    return BlobEvent(kind=EventKind.CREATED, key=key, ordering_token=hex_token(mtime_ns), size=size)


def folder_removed(key: str, *, observed_ns: int) -> BlobEvent:
    return BlobEvent(kind=EventKind.REMOVED, key=key, ordering_token=hex_token(observed_ns))


Indexed = tuple[int, BlobEvent]


def latest_per_image(events: Iterable[Indexed], prefix: str) -> tuple[list[Indexed], list[Indexed]]:
    """Split (position, event) pairs into the newest event of each image and the ones it
    supersedes: within one batch only the newest event per image can matter."""
    newest: dict[str, Indexed] = {}
    superseded: list[Indexed] = []
    for pair in events:
        ev = pair[1]
        iid = ev.image_id(prefix)
        cur = newest.get(iid)
        # Ties: the remove wins, as in the catalog (a same-token create never undoes a delete).
        if cur is None or (ev.ordering_token, ev.kind is EventKind.REMOVED) > (
            cur[1].ordering_token,
            cur[1].kind is EventKind.REMOVED,
        ):
            if cur is not None:
                superseded.append(cur)
            newest[iid] = pair
        else:
            superseded.append(pair)
    return sorted(newest.values(), key=lambda p: p[0]), superseded
