"""The backfill's messages and how they reach the ingest queue.

``backfill_event`` builds the notification S3 itself would have sent for an object, record for
record in the shape of S3's "Event message structure" (S3 user guide,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html): the
key form-encoded as S3 encodes it, the eTag, the size, and a ``sequencer`` that is the ordering
token the backfill chose (``ingest.backfill.run``). ``configurationId`` names the backfill, so a
message in the queue or the DLQ says where it came from.

``MessageSender`` sends them with SendMessageBatch: at most 10 entries and 256 KiB a call
(SQS API reference, SendMessageBatch). A batch can partly fail while the call succeeds, so each
entry's result is read; entries that failed for a reason on SQS's side (``SenderFault`` false)
are retried with backoff, the others are reported. Throttled calls are retried by botocore
(standard retry mode, set where the client is made).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote_plus

log = logging.getLogger(__name__)

CONFIGURATION_ID = "fashion-search-backfill"
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024
_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class EnqueueFailure:
    key: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "reason": self.reason}


class MessageSender(Protocol):
    def in_flight(self) -> int:
        """Messages the queue still holds (visible, in flight or delayed), approximately."""
        ...

    def send(self, bodies: Mapping[str, str]) -> list[EnqueueFailure]:
        """Send one message per key (at most 10); the keys that could not be sent."""
        ...


def backfill_event(
    *, bucket: str, region: str, key: str, etag: str, size: int, sequencer: str
) -> str:
    """The JSON body of one S3 ``ObjectCreated:Put`` notification for ``key``."""
    now = datetime.now(UTC)
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": CONFIGURATION_ID},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": sequencer[-16:], "x-amz-id-2": CONFIGURATION_ID},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": CONFIGURATION_ID,
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": CONFIGURATION_ID},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                # S3 sends keys form-encoded ("red+flower+%C3%A9.jpg"); ingest decodes them.
                "key": quote_plus(key, safe="/"),
                "size": size,
                "eTag": etag,
                "sequencer": sequencer,
            },
        },
    }
    return json.dumps({"Records": [record]}, separators=(",", ":"))


class SqsSender:
    """``MessageSender`` over a boto3 SQS client."""

    def __init__(self, client: Any, queue_url: str, *, backoff_s: float = 0.2) -> None:
        self._client = client
        self._queue_url = queue_url
        self._backoff_s = backoff_s

    def in_flight(self) -> int:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        from botocore.exceptions import BotoCoreError, ClientError

        from fashion_search.stores.aws.errors import translate_aws_error

        try:
            attrs = self._client.get_queue_attributes(
                QueueUrl=self._queue_url, AttributeNames=names
            )
        except (ClientError, BotoCoreError) as exc:  # a wrong URL, no permission, no network
            raise translate_aws_error(
                exc, service="SQS", what=f"reading {self._queue_url}", transient_codes=()
            ) from exc
        return sum(int(attrs.get("Attributes", {}).get(n, 0)) for n in names)

    def send(self, bodies: Mapping[str, str]) -> list[EnqueueFailure]:
        failures: list[EnqueueFailure] = []
        for batch in _batches(bodies):
            failures.extend(self._send_batch(batch))
        return failures

    def _send_batch(self, batch: dict[str, str]) -> list[EnqueueFailure]:
        from botocore.exceptions import BotoCoreError, ClientError

        pending = {f"m{i}": key for i, key in enumerate(batch)}
        refused: list[EnqueueFailure] = []
        why: dict[str, str] = {}
        for attempt in range(_ATTEMPTS):
            if attempt:
                time.sleep(self._backoff_s * 2 ** (attempt - 1))
            entries = [{"Id": i, "MessageBody": batch[k]} for i, k in pending.items()]
            try:
                response = self._client.send_message_batch(
                    QueueUrl=self._queue_url, Entries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                # botocore already retried throttling and 5xx: the whole call failed.
                return refused + [
                    EnqueueFailure(k, f"SendMessageBatch: {exc}") for k in pending.values()
                ]
            retry: dict[str, str] = {}
            for failed in response.get("Failed", []):
                key = pending[failed["Id"]]
                reason = f"{failed.get('Code', '?')}: {failed.get('Message', '')}"
                if failed.get("SenderFault", False):
                    refused.append(EnqueueFailure(key, reason))  # retrying cannot help
                else:
                    retry[failed["Id"]], why[key] = key, reason
            pending = retry
            if not pending:
                return refused
        log.warning("SQS kept failing %d backfill message(s)", len(pending))
        return refused + [EnqueueFailure(k, why[k]) for k in pending.values()]


def _batches(bodies: Mapping[str, str]) -> list[dict[str, str]]:
    """Split into SendMessageBatch calls: <= 10 entries and <= 256 KiB of bodies each."""
    out: list[dict[str, str]] = [{}]
    size = 0
    for key, body in bodies.items():
        n = len(body.encode())
        if out[-1] and (len(out[-1]) >= MAX_BATCH_ENTRIES or size + n > MAX_BATCH_BYTES):
            out.append({})
            size = 0
        out[-1][key] = body
        size += n
    return [b for b in out if b]
