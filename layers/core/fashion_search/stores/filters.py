"""Pinecone's metadata language: filter validation, a brute-force evaluator, metadata checks.

Every vector adapter validates filters here before any I/O, so a malformed filter raises the same
``InvalidFilter`` everywhere. ``matches`` is the reference semantics the property tests compare
each adapter against; the embedded index evaluates the same normalised tree (``compile_filter``)
over columnar metadata with numpy.

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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

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


def _mask(values: Any) -> npt.NDArray[np.bool_]:
    return np.asarray(values, dtype=bool)


class _Column:
    """One metadata field over every row of a namespace, as numpy arrays (absent = defaults)."""

    def __init__(self, capacity: int) -> None:
        self.present = np.zeros(capacity, dtype=bool)
        self.num = np.full(capacity, np.nan)  # numbers, as float64 like Pinecone
        self.code = np.full(capacity, -1, dtype=np.int32)  # strings, as vocabulary codes
        self.flag = np.full(capacity, -1, dtype=np.int8)  # booleans: 0 / 1
        self.list_rows: list[int] = []  # list-of-strings values, one entry per element
        self.list_codes: list[int] = []
        self._lists: tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]] | None = None

    def ensure(self, n: int) -> None:
        if n <= len(self.present):
            return
        size = max(n, 2 * len(self.present))
        for name, fill in (("present", False), ("num", np.nan), ("code", -1), ("flag", -1)):
            old = getattr(self, name)
            new = np.full(size, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def lists(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
        if self._lists is None:
            self._lists = (
                np.asarray(self.list_rows, dtype=np.int64),
                np.asarray(self.list_codes, dtype=np.int32),
            )
        return self._lists


class Columns:
    """Columnar metadata for the embedded index, built per field on first use.

    ``evaluate`` runs a compiled filter as a few vectorised comparisons, so a filtered query
    costs about one unfiltered scan plus a boolean mask (the benchmark's "filtered" column).
    """

    def __init__(self) -> None:
        self._cols: dict[str, _Column] = {}
        self._vocab: dict[str, int] = {}

    @property
    def fields(self) -> set[str]:
        return set(self._cols)

    def _code(self, text: str) -> int:
        return self._vocab.setdefault(text, len(self._vocab))

    def _set(self, col: _Column, row: int, value: Any) -> None:
        col.present[row] = True
        if isinstance(value, bool):
            col.flag[row] = int(value)
        elif isinstance(value, str):
            col.code[row] = self._code(value)
        elif isinstance(value, list):
            col.list_rows.extend([row] * len(value))
            col.list_codes.extend(self._code(item) for item in value)
            col._lists = None
        else:
            col.num[row] = float(value)

    def build(self, field: str, rows: Sequence[tuple[int, str, Any, str]], n_rows: int) -> None:
        """Build ``field`` from ``(row, json type, atom, json text)`` tuples (SQLite json_each)."""
        col = _Column(max(n_rows, 1))
        for row, kind, atom, text in rows:
            if row >= n_rows:  # committed after our snapshot: the next refresh adds it
                continue
            if kind == "array":
                self._set(col, row, json.loads(text))
            elif kind in ("true", "false"):
                self._set(col, row, kind == "true")
            else:
                self._set(col, row, atom)
        self._cols[field] = col

    def add_row(self, row: int, metadata: Mapping[str, Any], n_rows: int) -> None:
        for field, col in self._cols.items():
            col.ensure(n_rows)
            if field in metadata:
                self._set(col, row, metadata[field])

    def _eq(self, col: _Column, value: Any, n: int) -> npt.NDArray[np.bool_]:
        if isinstance(value, bool):
            return _mask(col.flag[:n] == int(value))
        if not isinstance(value, str):
            return _mask(col.num[:n] == float(value))
        code = self._vocab.get(value)
        if code is None:
            return np.zeros(n, dtype=bool)
        hit = _mask(col.code[:n] == code)
        list_rows, list_codes = col.lists()
        if len(list_rows):
            selected = list_rows[list_codes == code]
            hit[selected[selected < n]] = True
        return hit

    def _in(self, col: _Column, values: Sequence[Any], n: int) -> npt.NDArray[np.bool_]:
        codes = [self._vocab[v] for v in values if isinstance(v, str) and v in self._vocab]
        numbers = [float(v) for v in values if not isinstance(v, str)]
        hit = _mask(np.isin(col.code[:n], codes) | np.isin(col.num[:n], numbers))
        list_rows, list_codes = col.lists()
        if len(list_rows) and codes:
            selected = list_rows[np.isin(list_codes, codes)]
            hit[selected[selected < n]] = True
        return hit

    def evaluate(self, node: Node, n: int) -> npt.NDArray[np.bool_]:
        """The rows ``0..n-1`` that pass ``node`` (dead rows too; the caller masks them)."""
        if isinstance(node, And | Or):
            masks = [self.evaluate(child, n) for child in node.children]
            combine = np.logical_and if isinstance(node, And) else np.logical_or
            return _mask(combine.reduce(masks))
        col = self._cols[node.field]
        col.ensure(n)
        op, value = node.op, node.value
        if op == "$exists":
            present = col.present[:n]
            return present.copy() if value else ~present
        if op in ("$eq", "$ne"):
            hit = self._eq(col, value, n)
            return hit if op == "$eq" else ~hit
        if op in ("$in", "$nin"):
            hit = self._in(col, value, n)
            return hit if op == "$in" else ~hit
        numbers = col.num[:n]  # NaN (absent or not a number) compares False
        if op == "$gt":
            return _mask(numbers > value)
        if op == "$gte":
            return _mask(numbers >= value)
        if op == "$lt":
            return _mask(numbers < value)
        return _mask(numbers <= value)
