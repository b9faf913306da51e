"""The catalog of the AWS home: one DynamoDB table (layout in docs/stores-catalog.md).

Items live under ``pk = "item#<image_id>"``; one aggregate item ``pk = "meta#tag_values"`` keeps
the distinct tag values as string sets, so ``/tags`` is one GetItem and no path ever needs a Scan.
Two sparse KEYS_ONLY indexes serve reconcile (``by_status``, oldest update first) and dedup
(``by_hash``); their keys are resolved with BatchGetItem. Ordering and idempotency are
conditional writes, so two Lambdas racing on one key cannot both win.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fashion_search.errors import NotFound, StaleEvent, StoreError, TransientStoreError
from fashion_search.stores.aws.dynamodb_items import (
    ITEM_PREFIX,
    OPTIONAL_FIELDS,
    Attrs,
    decode_item,
    encode_item,
)
from fashion_search.stores.aws.dynamodb_table import (
    HASH_INDEX,
    STATUS_INDEX,
    create_catalog_table,
    translate_error,
)
from fashion_search.stores.catalog import MAX_TAG_VALUES_PER_FIELD, Catalog, StatusChange
from fashion_search.types import CatalogItem, ItemStatus, now

__all__ = ["HASH_INDEX", "STATUS_INDEX", "DynamoDBCatalog", "create_catalog_table"]

log = logging.getLogger(__name__)
_TAGS_PK = "meta#tag_values"
_TAG_ATTR = "tag#"
_RETRIES = 8


class DynamoDBCatalog(Catalog):
    """``Catalog`` port over a DynamoDB table made by ``create_catalog_table``."""

    # "A single operation can retrieve up to 16 MB of data, which can contain as many as 100
    # items" (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html);
    # the port also removes repeated ids, which BatchGetItem refuses.
    max_get_many = 100

    def __init__(self, table_name: str, *, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.table_name = table_name
        self._client = client
        # (field -> values) already in the aggregate item, so most puts skip that write.
        self._known_tags: dict[str, set[str]] | None = None

    def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, op)(TableName=self.table_name, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"{op} on {self.table_name}") from exc

    # -- writes -----------------------------------------------------------------------------

    def put(self, item: CatalogItem) -> None:
        self._call("put_item", Item=encode_item(item))
        self._record_tags(item.tags)

    def put_if_newer(self, item: CatalogItem) -> CatalogItem:
        attrs = encode_item(item)
        names: dict[str, str] = {"#pk": "pk"}
        values: Attrs = {}
        sets: list[str] = []
        for i, (name, value) in enumerate(attrs.items()):
            if name == "pk" or (name in ("tags", "tags_predicted") and not item.tags):
                continue  # keep the loader's tags when this event has none
            names[f"#a{i}"], values[f":a{i}"] = name, value
            expr = f"if_not_exists(#a{i}, :a{i})" if name == "created_at" else f":a{i}"
            sets.append(f"#a{i} = {expr}")
        removes = [
            n
            for n in (*OPTIONAL_FIELDS, "embedding", "embedding_dim", "text_embedding")
            if n not in attrs
        ]
        removes = [n for n in removes if n != "display_name"]
        for i, name in enumerate(removes):
            names[f"#r{i}"] = name
        update = "SET " + ", ".join(sets)
        if removes:
            update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        names["#tok"], values[":tok"] = "ordering_token", {"S": item.ordering_token}
        if item.status is ItemStatus.DELETED:  # a replayed delete is harmless
            condition = "attribute_not_exists(#pk) OR #tok <= :tok"
        else:  # a create with the delete's own token must not resurrect it
            names["#st"], values[":del"] = "status", {"S": ItemStatus.DELETED.value}
            condition = "attribute_not_exists(#pk) OR #tok < :tok OR (#tok = :tok AND #st <> :del)"
        try:
            response = self._call(
                "update_item",
                Key={"pk": attrs["pk"]},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except StaleEvent as exc:
            raise StaleEvent(
                f"item {item.image_id!r} holds a newer event than {item.ordering_token!r} "
                f"({item.status}), or was deleted by this one"
            ) from exc
        self._record_tags(item.tags)
        return decode_item(response["Attributes"])

    def _update_status(self, change: StatusChange) -> None:
        image_id, expected_token = change.image_id, change.expected_token
        names = {"#pk": "pk", "#st": "status", "#up": "updated_at", "#re": "reason"}
        values: Attrs = {":st": {"S": change.status.value}, ":up": {"N": repr(now())}}
        update = "SET #st = :st, #up = :up"
        if change.model_id is not None:
            names["#mo"], values[":mo"] = "model_id", {"S": change.model_id}
            update += ", #mo = :mo"
        if change.reason is not None:
            values[":re"] = {"S": change.reason}
            update += ", #re = :re"
        else:
            update += " REMOVE #re"
        condition = "attribute_exists(#pk)"
        if expected_token is not None:
            names["#tok"], values[":tok"] = "ordering_token", {"S": expected_token}
            condition += " AND #tok = :tok"
        try:
            self._call(
                "update_item",
                Key={"pk": {"S": ITEM_PREFIX + image_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except StaleEvent as exc:
            stored = self.get(image_id)
            if stored is None:
                raise NotFound(f"no catalog item {image_id!r}") from exc
            raise StaleEvent(
                f"item {image_id!r} now holds token {stored.ordering_token!r}, "
                f"not {expected_token!r}"
            ) from exc

    def delete(self, image_id: str) -> None:
        self._call("delete_item", Key={"pk": {"S": ITEM_PREFIX + image_id}})

    def _record_tags(self, tags: dict[str, str]) -> None:
        if not tags:
            return
        if self._known_tags is None:
            self._known_tags = self._read_tags()
        known = self._known_tags
        fresh = {
            f: str(v)
            for f, v in tags.items()
            if str(v) not in known.get(f, ()) and len(known.get(f, ())) < MAX_TAG_VALUES_PER_FIELD
        }
        if not fresh:
            return
        names = {f"#t{i}": _TAG_ATTR + f for i, f in enumerate(fresh)}
        values = {f":t{i}": {"SS": [v]} for i, v in enumerate(fresh.values())}
        try:
            self._call(
                "update_item",
                Key={"pk": {"S": _TAGS_PK}},
                UpdateExpression="ADD " + ", ".join(f"#t{i} :t{i}" for i in range(len(fresh))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except StoreError as exc:
            if isinstance(exc, TransientStoreError):
                raise
            # The aggregate hit DynamoDB's 400 KB item limit: stop growing it, keep ingesting.
            log.warning("tag value aggregate not updated: %s", exc.message)
        for f, v in fresh.items():
            known.setdefault(f, set()).add(v)

    # -- reads ------------------------------------------------------------------------------

    def get(self, image_id: str) -> CatalogItem | None:
        response = self._call(
            "get_item", Key={"pk": {"S": ITEM_PREFIX + image_id}}, ConsistentRead=True
        )
        return decode_item(response["Item"]) if "Item" in response else None

    def _get_many(self, image_ids: Sequence[str]) -> dict[str, CatalogItem]:
        found: dict[str, CatalogItem] = {}
        keys = [{"pk": {"S": ITEM_PREFIX + i}} for i in image_ids]
        for attempt in range(_RETRIES + 1):
            response = self._batch_get(keys)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = decode_item(raw)
                found[item.image_id] = item
            keys = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys")
            if not keys:
                break
            if attempt == _RETRIES:
                raise TransientStoreError(
                    f"DynamoDB left {len(keys)} keys unprocessed after {_RETRIES} retries"
                )
            time.sleep(min(0.05 * 2**attempt, 2.0))  # AWS: back off before retrying
        return found

    def _batch_get(self, keys: list[Attrs]) -> Any:
        try:
            return self._client.batch_get_item(RequestItems={self.table_name: {"Keys": keys}})
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"batch_get_item on {self.table_name}") from exc

    def _pages(self, index: str, name: str, value: str, **extra: Any) -> Iterator[Any]:
        """Query pages of ``index`` where ``name`` equals ``value``."""
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": name},
            "ExpressionAttributeValues": {":v": {"S": value}},
            **extra,
        }
        while True:
            page = self._call("query", **kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _query_ids(self, index: str, name: str, value: str) -> Iterator[list[str]]:
        """Pages of image ids from a KEYS_ONLY index."""
        for page in self._pages(index, name, value):
            yield [raw["pk"]["S"][len(ITEM_PREFIX) :] for raw in page.get("Items", [])]

    def find_by_hash(self, content_hash: str) -> list[CatalogItem]:
        ids = [
            i for page in self._query_ids(HASH_INDEX, "content_hash", content_hash) for i in page
        ]
        items = self.get_many(ids).values()
        return sorted(
            (i for i in items if i.content_hash == content_hash), key=lambda i: i.image_id
        )

    def _by_status(self, status: ItemStatus) -> Iterator[CatalogItem]:
        """Oldest update first. The index is eventually consistent: items whose status has
        moved on since are skipped."""
        for page in self._query_ids(STATUS_INDEX, "status", status.value):
            items = self.get_many(page)
            yield from (items[i] for i in page if i in items and items[i].status is status)

    def _count(self, status: ItemStatus | None) -> int:
        """Index queries with ``Select=COUNT`` (a Query reads only the small index entries)."""
        statuses = list(ItemStatus) if status is None else [status]
        return sum(
            int(page.get("Count", 0))
            for s in statuses
            for page in self._pages(STATUS_INDEX, "status", s.value, Select="COUNT")
        )

    def tag_values(self) -> dict[str, list[str]]:
        """Every value ever written for each field (one GetItem; values are not retracted when
        items go, since that would need a scan: a stale value just matches nothing)."""
        return {f: sorted(v) for f, v in sorted(self._read_tags().items())}

    def _read_tags(self) -> dict[str, set[str]]:
        response = self._call("get_item", Key={"pk": {"S": _TAGS_PK}})
        raw = response.get("Item", {})
        return {
            name[len(_TAG_ATTR) :]: set(value["SS"])
            for name, value in raw.items()
            if name.startswith(_TAG_ATTR)
        }
