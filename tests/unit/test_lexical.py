"""The lexical scorer: tokens, BM25 weights, stored statistics, and the score both homes use."""

from __future__ import annotations

import math

import pytest
from fashion_search.errors import InvalidInput
from fashion_search.lexical import (
    K1,
    LexicalStats,
    check_alpha,
    document_text,
    lexical_score,
    query_weights,
    sparse_document,
    sparse_query,
    token_index,
    tokenize,
)


def test_tokens_are_lower_case_accent_free_and_plural_folded() -> None:
    assert tokenize("Navy-Blue T-Shirts") == ["navy", "blue", "t", "shirt"]
    assert tokenize("Dresses DRESS dress") == ["dress", "dress", "dress"]
    assert tokenize("Crème Brûlée Heels_2") == ["creme", "brulee", "heel", "2"]
    assert tokenize("") == [] and tokenize(None) == []


def test_document_text_is_the_name_and_catalog_tags_but_no_year_nor_guesses() -> None:
    tags = {"baseColour": "Navy Blue", "year": "2012", "articleType": "Dresses"}
    assert document_text("Puma Women Dress", tags) == "Puma Women Dress Dresses Navy Blue"
    assert document_text("Puma Women Dress", tags, tags_predicted=True) == "Puma Women Dress"
    assert document_text(None, {}) == ""


def test_query_weights_are_idf_shares_summing_to_one() -> None:
    stats = LexicalStats.fit(["red dress", "red shirt", "blue dress", "puma cap"])
    w = query_weights(tokenize("red puma red"), stats)
    assert set(w) == {"red", "puma"} and sum(w.values()) == pytest.approx(1.0)
    assert w["puma"] > w["red"]  # rarer words weigh more
    unseen = query_weights(["zzz"], stats)
    assert unseen == {"zzz": pytest.approx(1.0)}
    assert query_weights([], stats) == {}


def test_score_is_the_weighted_saturated_term_frequency() -> None:
    w = {"red": 0.25, "dress": 0.75}
    one = 1 * (K1 + 1) / (1 + K1)
    two = 2 * (K1 + 1) / (2 + K1)
    assert lexical_score(w, ["red", "dress"]) == pytest.approx(one)
    assert lexical_score(w, ["red", "red", "shirt"]) == pytest.approx(0.25 * two)
    assert lexical_score(w, ["blue"]) == 0.0


def test_sparse_vectors_dot_to_the_same_score() -> None:
    """What Pinecone computes from the sparse values equals ``lexical_score``."""
    stats = LexicalStats.fit(["puma men red tshirt", "nike women shoes", "red dress"])
    doc = tokenize("Puma Men Red Tshirt Red")
    w = query_weights(tokenize("red puma shoes"), stats)
    d_idx, d_val = sparse_document(doc)
    q_idx, q_val = sparse_query(w)
    dot = sum(v * dict(zip(d_idx, d_val, strict=True)).get(i, 0.0)
              for i, v in zip(q_idx, q_val, strict=True))  # fmt: skip
    assert dot == pytest.approx(lexical_score(w, doc))
    assert d_idx == sorted(d_idx) and all(0 <= i < 2**32 for i in d_idx)
    assert token_index("puma") == token_index("puma") != token_index("nike")


def test_stats_round_trip_and_refuse_what_they_cannot_read() -> None:
    stats = LexicalStats.fit(["a b", "b c"])
    again = LexicalStats.from_json(stats.to_json())
    assert (again.n_docs, again.df) == (2, {"a": 1, "b": 2, "c": 1})
    assert math.isclose(again.idf("b"), stats.idf("b"))
    for bad in ("", "[]", '{"n_docs": 1}', '{"n_docs": "x", "df": {}}'):
        with pytest.raises(InvalidInput):
            LexicalStats.from_json(bad)


@pytest.mark.parametrize("alpha", [-0.01, 1.01, float("nan"), float("inf")])
def test_alpha_outside_zero_one_is_refused(alpha: float) -> None:
    with pytest.raises(InvalidInput) as err:
        check_alpha(alpha)
    assert err.value.field == "alpha"
