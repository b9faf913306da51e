"""The end of a migration: are the two homes the same catalog?

Counts per status must be equal, and a random sample of INDEXED items must have, in the target,
a vector equal (cosine > ``SAME_VECTOR_COSINE``) to the source's and a blob at the item's key.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fashion_search.transfer.mapping import SAME_VECTOR_COSINE, cosine
from fashion_search.types import CatalogItem, ItemStatus, Vector, VectorRecord

if TYPE_CHECKING:
    from fashion_search.home import Stores

log = logging.getLogger(__name__)
_SHOWN = 10  # ids listed per problem in the report
# Pinecone's writes and DynamoDB's index are eventually consistent: a vector upserted a moment
# ago may not be fetchable yet, a count may lag. Missing vectors are fetched, and unequal counts
# counted, again after these pauses before they count as wrong.
SETTLE_S = (0.5, 1.0, 2.0, 4.0)


@dataclass(slots=True)
class VerifyReport:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    sampled: int = 0
    vectors_equal: int = 0
    min_cosine: float | None = None
    vectors_wrong: list[str] = field(default_factory=list)  # missing or cosine too low
    blobs_missing: list[str] = field(default_factory=list)

    @property
    def counts_equal(self) -> bool:
        return all(c["source"] == c["target"] for c in self.counts.values())

    @property
    def ok(self) -> bool:
        return self.counts_equal and not self.vectors_wrong and not self.blobs_missing

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            ok=self.ok,
            counts_equal=self.counts_equal,
            vectors_wrong=self.vectors_wrong[:_SHOWN],
            blobs_missing=self.blobs_missing[:_SHOWN],
        )
        return out


def verify(
    source: Stores,
    target: Stores,
    *,
    sample: int,
    seed: int | None = None,
    settle_s: Sequence[float] = SETTLE_S,
) -> VerifyReport:
    """Compare counts per status, then ``sample`` random INDEXED items' vectors and blobs."""
    report = VerifyReport()
    report.counts = _counts(source, target)
    for pause in settle_s:  # DynamoDB counts come from a GSI, itself eventually consistent
        if report.counts_equal:
            break
        time.sleep(pause)
        report.counts = _counts(source, target)
    if sample <= 0:
        return report
    chosen = _reservoir(source.catalog.by_status(ItemStatus.INDEXED), sample, random.Random(seed))
    report.sampled = len(chosen)
    ids = [it.image_id for it in chosen]
    source_vectors = source.vectors.fetch(ids, namespace=source.namespace)
    target_vectors = _fetch_settled(target, ids, settle_s)
    target_items = target.catalog.get_many(ids)
    for item in chosen:
        expected = _source_vector(item, source_vectors)
        got = target_vectors.get(item.image_id)
        score = cosine(expected, got.values) if got is not None and expected is not None else -1.0
        report.min_cosine = score if report.min_cosine is None else min(report.min_cosine, score)
        if score > SAME_VECTOR_COSINE:
            report.vectors_equal += 1
        else:
            report.vectors_wrong.append(item.image_id)
        copy = target_items.get(item.image_id)
        if copy is None or target.blobs.head(copy.key) is None:
            report.blobs_missing.append(item.image_id)
    log.info("verification finished", extra={"report": report.as_dict()})
    return report


def _source_vector(item: CatalogItem, fetched: dict[str, VectorRecord]) -> Vector | None:
    """What the source index serves; the catalog's embedding when the index lacks the id."""
    record = fetched.get(item.image_id)
    return record.values if record is not None else item.embedding


def _counts(source: Stores, target: Stores) -> dict[str, dict[str, int]]:
    return {
        s.value: {"source": source.catalog.count(s), "target": target.catalog.count(s)}
        for s in ItemStatus
    }


def _fetch_settled(
    target: Stores, ids: list[str], settle_s: Sequence[float]
) -> dict[str, VectorRecord]:
    found = target.vectors.fetch(ids, namespace=target.namespace)
    for pause in settle_s:
        missing = [i for i in ids if i not in found]
        if not missing:
            break
        time.sleep(pause)
        found.update(target.vectors.fetch(missing, namespace=target.namespace))
    return found


def _reservoir(items: Iterable[CatalogItem], k: int, rng: random.Random) -> list[CatalogItem]:
    """A uniform sample of ``k`` items in one pass, holding only ``k`` (Algorithm R)."""
    chosen: list[CatalogItem] = []
    for n, item in enumerate(items):
        if n < k:
            chosen.append(item)
        else:
            j = rng.randrange(n + 1)
            if j < k:
                chosen[j] = item
    return chosen
