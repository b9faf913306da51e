"""The catalog's DynamoDB table: its definition and how DynamoDB's errors map to ours.

``create_catalog_table`` is the table the adapter in ``aws.dynamodb_catalog`` reads and writes;
template.yaml's ``CatalogTable`` must declare the same keys and indexes (tests/infra checks it).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fashion_search.errors import FashionSearchError
from fashion_search.stores.aws.errors import translate_aws_error

STATUS_INDEX = "by_status"  # status (HASH) + updated_at (RANGE), KEYS_ONLY
HASH_INDEX = "by_hash"  # content_hash (HASH), KEYS_ONLY; sparse: items without a hash are absent
# Codes AWS documents as retryable; any 5xx is treated the same.
TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
}


def create_catalog_table(client: Any, name: str) -> None:
    """Create the table and its indexes (on-demand); an existing table is left as it is."""
    keys = {"pk": "S", "status": "S", "updated_at": "N", "content_hash": "S"}
    try:
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": k, "AttributeType": t} for k, t in keys.items()
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": STATUS_INDEX,
                    "KeySchema": [
                        {"AttributeName": "status", "KeyType": "HASH"},
                        {"AttributeName": "updated_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": HASH_INDEX,
                    "KeySchema": [{"AttributeName": "content_hash", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
            ],
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise translate_error(exc, f"create table {name}") from exc
        return
    client.get_waiter("table_exists").wait(TableName=name)


def translate_error(exc: ClientError | BotoCoreError, what: str) -> FashionSearchError:
    return translate_aws_error(
        exc,
        service="DynamoDB",
        what=what,
        transient_codes=TRANSIENT_CODES,
        stale_codes=("ConditionalCheckFailedException",),
    )
