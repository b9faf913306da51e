"""The one model queue: concurrent calls of a tower share a run, a lone call runs at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fashion_search.model.batching import ModelQueue
from fashion_search.model.embedder import OnnxClipEmbedder
from numpy.typing import NDArray

Rows = NDArray[np.generic]


class GatedRunner:
    """Records every batch it runs; the first run blocks until ``release`` is set, so the calls
    that arrive meanwhile are certain to be waiting (no sleeps, no timing)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.batches: list[list[float]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.scale = scale

    def __call__(self, rows: Rows) -> NDArray[np.float32]:
        self.batches.append([float(r[0]) for r in rows])
        self.started.set()
        self.release.wait(timeout=30)
        return (np.asarray(rows, dtype=np.float32) * self.scale).astype(np.float32)


def rows(*values: float) -> NDArray[np.float32]:
    return np.asarray([[v, v] for v in values], dtype=np.float32)


def wait_until(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(3000):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition never became true")


def test_a_lone_caller_runs_at_once_one_call_per_batch() -> None:
    """The Lambda's case: one request per container is one batch and never waits."""
    runner = GatedRunner()
    runner.release.set()
    queue = ModelQueue({"text": runner}, max_rows=8, max_wait_s=5.0)
    for i in range(5):
        np.testing.assert_array_equal(queue.run("text", rows(i)), rows(i))
    assert runner.batches == [[0], [1], [2], [3], [4]]
    assert queue.stats.waits == 0 and queue.stats.runs == 5


def test_calls_arriving_during_a_run_share_the_next_one() -> None:
    runner = GatedRunner(scale=2.0)
    queue = ModelQueue({"text": runner}, max_rows=16, max_wait_s=0.0)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(queue.run, "text", rows(0))
        assert runner.started.wait(30)
        later = [pool.submit(queue.run, "text", rows(i, i + 0.5)) for i in range(1, 7)]
        wait_until(lambda: len(queue._pending) == 6)
        runner.release.set()
        np.testing.assert_array_equal(first.result(), rows(0) * 2)
        for i, future in enumerate(later, start=1):  # each caller gets its own rows back
            np.testing.assert_array_equal(future.result(), rows(i, i + 0.5) * 2)
    assert len(runner.batches) == 2
    assert sorted(runner.batches[1]) == sorted(v for i in range(1, 7) for v in (i, i + 0.5))
    assert queue.stats.largest_batch == 6


def test_batches_stop_at_max_rows_and_keep_arrival_order() -> None:
    runner = GatedRunner()
    queue = ModelQueue({"text": runner}, max_rows=4, max_wait_s=0.0)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(queue.run, "text", rows(0))
        assert runner.started.wait(30)
        later = []
        for i in range(1, 6):  # one at a time, so the arrival order is known
            later.append(pool.submit(queue.run, "text", rows(i, i)))
            wait_until(lambda n=i: len(queue._pending) == n)
        runner.release.set()
        for future in [first, *later]:
            future.result()
    assert runner.batches == [[0], [1, 1, 2, 2], [3, 3, 4, 4], [5, 5]]


def test_towers_are_never_mixed_in_one_run() -> None:
    text, image = GatedRunner(), GatedRunner(scale=-1.0)
    image.release.set()
    queue = ModelQueue({"text": text, "image": image}, max_rows=16, max_wait_s=0.0)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(queue.run, "text", rows(0))
        assert text.started.wait(30)
        calls = [
            pool.submit(queue.run, tower, rows(i))
            for i, tower in enumerate(["image", "text", "image", "text"], start=1)
        ]
        wait_until(lambda: len(queue._pending) == 4)
        text.release.set()
        first.result()
        results = [c.result() for c in calls]
    assert text.batches == [[0], [2, 4]] and image.batches == [[1, 3]]
    np.testing.assert_array_equal(results[0], -rows(1))
    np.testing.assert_array_equal(results[1], rows(2))


def test_a_failed_run_fails_its_callers_and_the_queue_goes_on() -> None:
    gate = GatedRunner()
    state = {"fail": True}

    def runner(batch: Rows) -> NDArray[np.float32]:
        out = gate(batch)
        if state["fail"] and len(batch) > 1:
            raise RuntimeError("model exploded")
        return out

    queue = ModelQueue({"text": runner}, max_rows=16, max_wait_s=0.0)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(queue.run, "text", rows(0))
        assert gate.started.wait(30)
        doomed = [pool.submit(queue.run, "text", rows(i)) for i in (1, 2)]
        wait_until(lambda: len(queue._pending) == 2)
        gate.release.set()
        first.result()
        for future in doomed:
            with pytest.raises(RuntimeError, match="model exploded"):
                future.result()
    state["fail"] = False
    np.testing.assert_array_equal(queue.run("text", rows(7)), rows(7))


def test_after_a_grouped_run_the_next_waits_for_company() -> None:
    """Once calls have arrived together, a run waits (up to max_wait) for more to join."""
    runner = GatedRunner()
    queue = ModelQueue({"text": runner}, max_rows=2, max_wait_s=0.05)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(queue.run, "text", rows(0))
        assert runner.started.wait(30)
        pair = [pool.submit(queue.run, "text", rows(i)) for i in (1, 2)]
        wait_until(lambda: len(queue._pending) == 2)
        runner.release.set()
        for future in [first, *pair]:
            future.result()
    assert queue.stats.waits == 0  # the grouped run found its rows already there
    queue.run("text", rows(3))  # alone after a grouped run: waits, finds nobody, runs alone
    assert queue.stats.waits == 1 and runner.batches[-1] == [3]
    queue.run("text", rows(4))  # the previous run was not grouped: no wait
    assert queue.stats.waits == 1


def test_concurrent_queries_through_the_embedder_match_one_by_one(tiny_bundle: Path) -> None:
    emb = OnnxClipEmbedder.from_bundle(tiny_bundle, intra_op_threads=1, batch_size=16)
    texts = ["red", "a long flowing navy blue evening dress with sequins", "socks", "hat"] * 3
    alone = np.concatenate([emb.embed_texts([t]) for t in texts])
    gate = threading.Event()
    real_run = emb.textual.run

    def gated(ids: Rows) -> NDArray[np.float32]:
        gate.wait(timeout=30)
        return real_run(ids)

    emb.textual.run = gated  # type: ignore[method-assign]
    runs_before = emb.queue.stats.runs
    with ThreadPoolExecutor(len(texts)) as pool:
        futures = [pool.submit(emb.embed_texts, [t]) for t in texts]
        wait_until(lambda: len(emb.queue._pending) == len(texts) - 1)
        gate.set()
        together = np.concatenate([f.result() for f in futures])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert emb.queue.stats.runs - runs_before == 2  # the first alone, then all the others
