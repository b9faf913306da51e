"""Pinecone's metadata language: filter validation, a brute-force evaluator, metadata checks.

Every vector adapter validates filters here before any I/O, so a malformed filter raises the same
``InvalidFilter`` everywhere. ``matches`` is the reference semantics the property tests compare
each adapter against; the embedded index evaluates the same normalised tree (``compile_filter``)
over columnar metadata with numpy (``embedded.columns``).

Semantics (https://docs.pinecone.io/guides/search/filter-by-metadata; the language "is based on
MongoDB's query and projection operators", so where Pinecone's page is silent we follow MongoDB):

* ``{"f": v}`` means ``{"f": {"$eq": v}}``; several operators on one field, or several fields in
  one object, are ANDed; ``$and`` / ``$or`` take a non-empty list of filters; ``{}`` matches all.
* Numbers are compared as 64-bit floats (Pinecone stores every number as float64); booleans are
  not numbers. ``$gt $gte $lt $lte`` match numbers only.
* A list-of-strings value matches ``$eq`` / ``$in`` when any element does; ``$ne`` / ``$nin``
  match when no element does.
* ``$ne`` and ``$nin`` also match records that lack the field (MongoDB's rule: they are the exact
  negation of ``$eq`` / ``$in``). ``{"f": {"$exists": false}}`` matches records without ``f``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from fashion_search.errors import InvalidFilter, InvalidInput, PayloadTooLarge
from fashion_search.types import Filter

COMPARISONS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
LOGICAL = frozenset({"$and", "$or"})
RANGE = frozenset({"$gt", "$gte", "$lt", "$lte"})
MAX_DEPTH = 16  # nesting of $and/$or; deeper is refused rather than recursed into
MAX_METADATA_BYTES = 40 * 1024  # Pinecone: 40 KB of metadata per vector
MAX_ID_LENGTH = 512  # Pinecone: record ids are 1..512 characters

Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Cmp:
    """One comparison: ``field op value`` (``$ne``/``$nin`` are kept, evaluated as negations)."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = Cmp | And | Or


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalar(value: object, *, field: str, op: str, allow_bool: bool = True) -> None:
    if isinstance(value, bool):
        if allow_bool:
            return
    elif isinstance(value, str):
        return
    elif _is_number(value):
        if math.isfinite(value):  # type: ignore[arg-type]
            return
        raise InvalidFilter(f"{op} on field {field!r} needs a finite number", field=field)
    kinds = "a string, number or boolean" if allow_bool else "a string or number"
    raise InvalidFilter(
        f"{op} on field {field!r} needs {kinds}, got {type(value).__name__}", field=field
    )


def _compile_comparison(field: str, op: str, value: Any) -> Cmp:
    if op not in COMPARISONS:
        raise InvalidFilter(
            f"unknown operator {op!r} on field {field!r}; use one of {sorted(COMPARISONS)}",
            field=field,
        )
    if op in ("$eq", "$ne"):
        _check_scalar(value, field=field, op=op)
    elif op in RANGE:
        if not _is_number(value) or not math.isfinite(value):
            raise InvalidFilter(f"{op} on field {field!r} needs a finite number", field=field)
    elif op in ("$in", "$nin"):
        if not isinstance(value, list):
            raise InvalidFilter(f"{op} on field {field!r} needs a list", field=field)
        for item in value:
            _check_scalar(item, field=field, op=op, allow_bool=False)
        value = tuple(value)
    elif not isinstance(value, bool):  # $exists
        raise InvalidFilter(f"$exists on field {field!r} needs true or false", field=field)
    return Cmp(field, op, value)


def _compile_field(field: str, spec: Any, known_fields: Collection[str] | None) -> Node:
    if not field:
        raise InvalidFilter("a filter field name must not be empty", field=field)
    if known_fields is not None and field not in known_fields:
        raise InvalidFilter(
            f"unknown filter field {field!r}; known fields: {', '.join(sorted(known_fields))}",
            field=field,
        )
    if isinstance(spec, Mapping):
        if not spec:
            raise InvalidFilter(f"the condition on field {field!r} is empty", field=field)
        parts = [_compile_comparison(field, str(op), v) for op, v in spec.items()]
        return parts[0] if len(parts) == 1 else And(tuple(parts))
    if isinstance(spec, list):
        raise InvalidFilter(
            f"field {field!r} is compared with a list; use {{'$in': [...]}}", field=field
        )
    return _compile_comparison(field, "$eq", spec)


def _compile(f: Any, known_fields: Collection[str] | None, depth: int) -> Node:
    if not isinstance(f, Mapping):
        raise InvalidFilter(f"a filter must be a JSON object, got {type(f).__name__}")
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"filter nested deeper than {MAX_DEPTH} levels")
    parts: list[Node] = []
    for key, spec in f.items():
        if not isinstance(key, str):
            raise InvalidFilter(f"filter keys must be strings, got {key!r}")
        if key in LOGICAL:
            if not isinstance(spec, list) or not spec:
                raise InvalidFilter(f"{key} needs a non-empty list of filters", field=key)
            children = tuple(_compile(child, known_fields, depth + 1) for child in spec)
            parts.append(And(children) if key == "$and" else Or(children))
        elif key.startswith("$"):
            raise InvalidFilter(
                f"unknown operator {key!r} at filter level; use $and or $or, or a field name",
                field=key,
            )
        else:
            parts.append(_compile_field(key, spec, known_fields))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def compile_filter(f: Filter | None, *, known_fields: Collection[str] | None = None) -> Node:
    """The validated, normalised tree of ``f`` (``None`` and ``{}`` match everything)."""
    return _compile(f or {}, known_fields, 0)


def validate_filter(f: Filter | None, *, known_fields: Collection[str] | None = None) -> None:
    """Raise ``InvalidFilter`` naming the bad field or operator; ``None`` is a valid filter."""
    compile_filter(f, known_fields=known_fields)


def _same(a: object, b: object) -> bool:
    """Pinecone equality: strings with strings, booleans with booleans, numbers as float64."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return _is_number(a) and _is_number(b) and float(a) == float(b)  # type: ignore[arg-type]


def _eq(value: object, target: object) -> bool:
    if isinstance(value, list):
        return any(_same(item, target) for item in value)
    return _same(value, target)


def _evaluate(node: Node, metadata: Mapping[str, Any]) -> bool:
    if isinstance(node, And):
        return all(_evaluate(child, metadata) for child in node.children)
    if isinstance(node, Or):
        return any(_evaluate(child, metadata) for child in node.children)
    present = node.field in metadata
    value = metadata.get(node.field)
    op, target = node.op, node.value
    if op == "$exists":
        return present is target
    if op in ("$eq", "$ne"):
        hit = present and _eq(value, target)
        return hit if op == "$eq" else not hit
    if op in ("$in", "$nin"):
        hit = present and any(_eq(value, t) for t in target)
        return hit if op == "$in" else not hit
    if not _is_number(value):
        return False
    number = float(value)  # type: ignore[arg-type]
    bound = float(target)
    if op == "$gt":
        return number > bound
    if op == "$gte":
        return number >= bound
    if op == "$lt":
        return number < bound
    return number <= bound


def matches(f: Filter | Node | None, metadata: Mapping[str, Any]) -> bool:
    """Whether a record with ``metadata`` passes ``f`` (brute force; the reference semantics)."""
    node = f if isinstance(f, Cmp | And | Or) else compile_filter(f)
    return _evaluate(node, metadata)


def fields_of(node: Node) -> set[str]:
    """The metadata fields a compiled filter reads."""
    if isinstance(node, Cmp):
        return {node.field}
    return set().union(*(fields_of(child) for child in node.children))


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """The compact JSON a store keeps and sends; its UTF-8 length is what the 40 KB cap counts."""
    return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def validate_record_id(record_id: object) -> str:
    if not isinstance(record_id, str) or not 1 <= len(record_id) <= MAX_ID_LENGTH:
        raise InvalidInput(
            f"a vector id must be a string of 1..{MAX_ID_LENGTH} characters, got {record_id!r:.80}",
            field="id",
        )
    return record_id


def validate_metadata(metadata: Mapping[str, Any], *, record_id: str) -> str:
    """Check Pinecone's metadata rules and return the metadata's compact JSON.

    Values are strings, finite numbers, booleans or lists of strings; no null, no nested
    objects; keys are non-empty and do not start with ``$``; at most 40 KB once encoded.
    """
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise InvalidInput(
                f"vector {record_id!r}: metadata key {key!r} must be a non-empty string "
                "not starting with '$'",
                field=str(key),
            )
        if isinstance(value, bool | str) or (_is_number(value) and math.isfinite(value)):
            continue
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            continue
        raise InvalidInput(
            f"vector {record_id!r}: metadata {key!r} must be a string, finite number, boolean "
            f"or list of strings, got {type(value).__name__} (null is not allowed: drop the key)",
            field=key,
        )
    encoded = metadata_json(metadata)
    size = len(encoded.encode())
    if size > MAX_METADATA_BYTES:
        raise PayloadTooLarge(
            f"vector {record_id!r}: metadata is {size} bytes; the limit is "
            f"{MAX_METADATA_BYTES} bytes per vector",
            field="metadata",
        )
    return encoded
