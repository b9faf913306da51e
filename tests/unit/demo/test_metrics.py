"""Evaluation metrics and protocol on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from fashion_search.errors import InvalidInput
from fashion_search.eval.metrics import (
    document_scores,
    image_to_image,
    rank_metrics,
    same_label,
)
from fashion_search.eval.protocol import evaluate_embeddings
from fashion_search.eval.styles import StyleRow


def test_rank_metrics_worked_example() -> None:
    # Query 0: relevant doc ranked 1st. Query 1: relevant docs ranked 2nd and 3rd.
    # Query 2: relevant doc ranked 4th (outside top 3).
    scores = np.array(
        [[0.9, 0.1, 0.2, 0.3], [0.9, 0.8, 0.7, 0.1], [0.4, 0.3, 0.2, 0.1]], dtype=np.float32
    )
    relevant = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=bool)
    r = rank_metrics(scores, relevant, ks=(1, 3))
    assert r.queries == 3
    assert r.recall == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3)}
    assert r.precision[1] == pytest.approx(1 / 3)
    assert r.precision[3] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert r.mrr == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)


def test_ties_do_not_favour_the_relevant_document() -> None:
    scores = np.zeros((1, 3), dtype=np.float32)
    relevant = np.array([[False, False, True]])
    assert rank_metrics(scores, relevant, ks=(1,)).mrr == pytest.approx(1 / 3)


def test_queries_without_any_relevant_document_are_left_out() -> None:
    scores = np.ones((2, 2), dtype=np.float32)
    relevant = np.array([[True, False], [False, False]])
    assert rank_metrics(scores, relevant, ks=(1,)).queries == 1


def test_bad_shapes_and_ks_are_refused() -> None:
    with pytest.raises(InvalidInput):
        rank_metrics(np.zeros((2, 2), np.float32), np.zeros((2, 3), bool), ks=(1,))
    with pytest.raises(InvalidInput):
        rank_metrics(np.zeros((2, 2), np.float32), np.zeros((2, 2), bool), ks=(0,))


def test_labels_compare_case_insensitively() -> None:
    m = same_label(["red", "Blue"], ["Red", "blue", "red "])
    assert m.tolist() == [[True, False, False], [False, True, False]]


def test_document_scores_weight_image_and_text() -> None:
    q = np.array([[1.0, 0.0]], np.float32)
    images = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    texts = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    assert document_scores(q, images, texts).tolist() == [[pytest.approx(0.9), pytest.approx(0.1)]]
    assert document_scores(q, images).tolist() == [[1.0, 0.0]]


def test_image_to_image_excludes_the_query_itself() -> None:
    v = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.8, 0.2], [0.1, 1]], np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = image_to_image(v, ["a", "a", "b", "b", "c"], ks=(1,))
    # "c" has no other product with its label: left out. Both "a" find each other; the "b"
    # nearest neighbours are "c" and an "a".
    assert r.queries == 4
    assert r.precision[1] == pytest.approx(2 / 4)


def _rows(specs: Sequence[tuple[str, str, str]]) -> list[StyleRow]:
    return [
        StyleRow(
            id=str(i), name=name, tags={"articleType": t, "baseColour": c}, image=Path(f"{i}.jpg")
        )
        for i, (name, t, c) in enumerate(specs)
    ]


def test_protocol_on_a_perfect_and_a_useless_embedder() -> None:
    rows = _rows(
        [("Red Dress", "Dresses", "Red"), ("Blue Dress", "Dresses", "Blue"),
         ("Red Cap", "Caps", "Red"), ("Blue Cap", "Caps", "Blue")]
    )  # fmt: skip
    # One axis per word: a text and an image embed to the sum of their words, normalised.
    vocab = ["red", "blue", "dress", "dresses", "cap", "caps"]

    def embed(texts: Sequence[str]) -> np.ndarray:
        out = np.array([[float(w in t.lower().split()) for w in vocab] for t in texts], np.float32)
        out[:, 2] += out[:, 3]  # "dresses" means dress
        out[:, 4] += out[:, 5]
        out[:, 3] = out[:, 5] = 0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    images = embed([r.name for r in rows])
    results = {r.task: r.scores for r in evaluate_embeddings(rows, images, embed)}
    assert results["text->image"].recall[1] == 1.0
    assert results["text->image (image only)"].mrr == 1.0
    assert results["category->product"].precision[1] == 1.0
    assert results["colour->product"].recall[1] == 1.0

    rng = np.random.default_rng(0)
    noise = rng.normal(size=(4, 6)).astype(np.float32)
    useless = {
        r.task: r.scores
        for r in evaluate_embeddings(
            rows, noise, lambda t: rng.normal(size=(len(t), 6)).astype(np.float32)
        )
    }
    assert useless["text->image (image only)"].mrr < 1.0
