"""Lexical matching of query words against a product's catalog text, and its fusion with the
dense (CLIP) score. Pure Python: the same functions score in both homes and in the eval.

Scoring is BM25 cut to what short product names need, written out so that one query is one
Pinecone round trip (a sparse-dense query) and the embedded home (SQLite FTS5 for candidates)
computes the very same number:

- a document's weight for a token is BM25's saturated term frequency ``tf (k1+1) / (tf + k1)``
  with ``b = 0`` (no length normalisation: display names are all a few words long, and it keeps
  ingest free of catalog-wide constants, so a new product is searchable the moment it lands);
- a query's weight for a token is its inverse document frequency, the catalog's, normalised to
  sum to 1 over the query's distinct tokens (Lucene's ``log(1 + (N - df + 0.5) / (df + 0.5))``,
  never negative; a token the catalog has never seen gets the largest idf, ``df = 0``);
- the lexical score is the dot product of the two: about 1 when every query word is in the
  document once, 0 when none is.

Fusion is a weighted sum, ``alpha * dense + (1 - alpha) * lexical`` (docs/search.md says why not
reciprocal-rank fusion: Pinecone computes the weighted sum inside one query, RRF needs two).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fashion_search.errors import InvalidInput

K1 = 1.2
# Tag fields left out of a product's text: a year is not a word anyone searches by.
SKIPPED_TAG_FIELDS = frozenset({"year"})
_WORD = re.compile(r"[^\W_]+")


def _stem(token: str) -> str:
    """Plural folding (Porter's step 1a, the part that matters for product nouns):
    dresses -> dress, shorts -> short, dress stays dress."""
    if token.endswith("sses"):
        return token[:-2]
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("ss") or token.endswith("us") or len(token) <= 3:
        return token
    if token.endswith("s"):
        return token[:-1]
    return token


def tokenize(text: str | None) -> list[str]:
    """Lower-cased, accent-free, plural-folded words: "Navy-Blue T-Shirts" ->
    ["navy", "blue", "t", "shirt"]."""
    if not text:
        return []
    folded = text.casefold()
    if not folded.isascii():
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(c for c in folded if not unicodedata.combining(c))
    return [_stem(t) for t in _WORD.findall(folded)]


def document_text(
    display_name: str | None, tags: Mapping[str, str], *, tags_predicted: bool = False
) -> str:
    """The words a product is found by: its display name and its catalog tags. Predicted tags
    are a guess from the picture, not catalog text, and are left out."""
    parts = [display_name or ""]
    if not tags_predicted:
        parts += [str(v) for k, v in sorted(tags.items()) if k not in SKIPPED_TAG_FIELDS and v]
    return " ".join(p for p in parts if p).strip()


def term_weight(tf: int) -> float:
    return tf * (K1 + 1.0) / (tf + K1)


def token_index(token: str) -> int:
    """A stable 32-bit index for a token (Pinecone sparse indices are uint32)."""
    return zlib.crc32(token.encode("utf-8"))


def document_weights(tokens: Sequence[str]) -> dict[str, float]:
    return {t: term_weight(n) for t, n in Counter(tokens).items()}


def sparse_document(tokens: Sequence[str]) -> tuple[list[int], list[float]]:
    """The document's sparse vector (indices, values), indices ascending, for Pinecone."""
    by_index: dict[int, float] = {}
    for token, weight in document_weights(tokens).items():
        i = token_index(token)
        by_index[i] = by_index.get(i, 0.0) + weight  # a hash collision adds up, harmlessly
    ordered = sorted(by_index)
    return ordered, [by_index[i] for i in ordered]


@dataclass(slots=True)
class LexicalStats:
    """Document frequencies of a catalog's tokens: the fitted part of the encoder."""

    n_docs: int = 0
    df: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, texts: Iterable[str]) -> LexicalStats:
        stats = cls()
        for text in texts:
            stats.n_docs += 1
            for token in set(tokenize(text)):
                stats.df[token] = stats.df.get(token, 0) + 1
        return stats

    def idf(self, token: str) -> float:
        df = min(self.df.get(token, 0), self.n_docs)
        return math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))

    def to_json(self) -> str:
        return json.dumps({"version": 1, "n_docs": self.n_docs, "df": self.df}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LexicalStats:
        try:
            data = json.loads(text)
            df = {str(k): int(v) for k, v in data["df"].items()}
            return cls(n_docs=int(data["n_docs"]), df=df)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"not a lexical statistics file: {exc}") from exc


def query_weights(tokens: Sequence[str], stats: LexicalStats) -> dict[str, float]:
    """Each distinct query token's idf share (they sum to 1); empty for an empty query."""
    unique = list(dict.fromkeys(tokens))
    idf = {t: stats.idf(t) for t in unique}
    total = sum(idf.values())
    if total <= 0:
        return {}
    return {t: w / total for t, w in idf.items()}


def sparse_query(weights: Mapping[str, float]) -> tuple[list[int], list[float]]:
    by_index: dict[int, float] = {}
    for token, weight in weights.items():
        i = token_index(token)
        by_index[i] = by_index.get(i, 0.0) + weight
    ordered = sorted(by_index)
    return ordered, [by_index[i] for i in ordered]


def lexical_score(weights: Mapping[str, float], doc_tokens: Sequence[str]) -> float:
    """The reference score: what Pinecone's sparse dot product and the FTS5 path compute."""
    # Only the query's tokens matter: count those, not the whole document (the hot loop of a
    # hybrid query scores every candidate).
    return float(sum(w * term_weight(n) for t, w in weights.items() if (n := doc_tokens.count(t))))


def fuse(dense: float, lexical: float, alpha: float) -> float:
    return alpha * dense + (1.0 - alpha) * lexical


def check_alpha(alpha: float) -> float:
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise InvalidInput("alpha must be a number from 0 (words only) to 1 (picture only)",
                           field="alpha")  # fmt: skip
    return alpha
