"""One queue for every model call of a process: concurrent calls to the same tower run as one batch.

Concurrent requests that each start their own onnxruntime run fight over the same cores (on a
2-vCPU host, 16 runs of 2 threads each); one run at a time, with the queries that arrived
meanwhile grouped into its batch, uses the cores once and amortises the per-run overhead.

The queue has no thread of its own (flat combining): a caller that finds the model idle runs its
own rows at once, in its own thread, so a lone request (the Lambda's one request per container,
``serve`` at low load) pays nothing: no hand-off, no wait. Callers that arrive while a run is in
progress queue up; when the run ends, the oldest waiting caller becomes the runner and takes every
waiting call of its tower (up to ``max_rows`` rows) as one batch. Only when the previous batch
grouped several calls (so others are evidently arriving) does the runner wait up to ``max_wait_s``
for more calls to join, so that a caller just back with its answer can make the next batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Runner = Callable[[NDArray[np.generic]], NDArray[np.float32]]


@dataclass(slots=True, eq=False)
class _Call:
    tower: str
    rows: NDArray[np.generic]
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: NDArray[np.float32] | None = None
    error: BaseException | None = None


@dataclass(slots=True)
class QueueStats:
    """Counters for tests and logs: how many runs, how many calls they carried, waits taken."""

    runs: int = 0
    calls: int = 0
    rows: int = 0
    waits: int = 0
    largest_batch: int = 0


class ModelQueue:
    """Serialises model runs and groups concurrent calls per tower (thread-safe)."""

    def __init__(
        self, runners: Mapping[str, Runner], *, max_rows: int = 16, max_wait_s: float = 0.002
    ) -> None:
        """``runners[tower](rows)`` embeds stacked rows (one output row per input row)."""
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self._runners = dict(runners)
        self.max_rows = max_rows
        self.max_wait_s = max(0.0, max_wait_s)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._pending: deque[_Call] = deque()
        self._busy = False
        self._last_grouped = False
        self.stats = QueueStats()

    def run(self, tower: str, rows: NDArray[np.generic]) -> NDArray[np.float32]:
        """Embeddings of ``rows`` through ``tower``, possibly computed in a batch with others."""
        if tower not in self._runners:
            raise KeyError(f"no runner for tower {tower!r}")
        call = _Call(tower, rows)
        with self._lock:
            self._pending.append(call)
            lead = not self._busy
            if lead:
                self._busy = True
            else:
                self._arrived.notify()  # a runner may be waiting for company
        while True:
            if not lead:
                call.wake.wait()
                call.wake.clear()
                if not call.done:  # handed the runner's role: our call is the oldest waiting
                    lead = True
                    continue
            else:
                self._run_batch()
            if call.done:
                if call.error is not None:
                    raise call.error
                assert call.result is not None
                return call.result
            lead = False

    def _take(self) -> list[_Call]:
        """The oldest waiting call and the waiting calls of its tower that fit (under the lock)."""
        first = self._pending[0]
        if self._last_grouped and self.max_wait_s > 0:
            deadline = time.monotonic() + self.max_wait_s
            waited = False
            while self._rows_of(first.tower) < self.max_rows:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                waited = True
                self._arrived.wait(left)
            self.stats.waits += waited
        batch: list[_Call] = []
        rows, keep = 0, deque[_Call]()
        for call in self._pending:
            n = len(call.rows)
            if call.tower == first.tower and (not batch or rows + n <= self.max_rows):
                batch.append(call)
                rows += n
            else:
                keep.append(call)
        self._pending = keep
        return batch

    def _rows_of(self, tower: str) -> int:
        return sum(len(c.rows) for c in self._pending if c.tower == tower)

    def _run_batch(self) -> None:
        with self._lock:
            batch = self._take()
        try:
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([c.rows for c in batch])
            out = self._runners[batch[0].tower](rows)
            start = 0
            for call in batch:
                call.result = out[start : start + len(call.rows)]
                start += len(call.rows)
        except BaseException as exc:  # every caller of the batch sees the run's failure
            for call in batch:
                call.error = exc
        with self._lock:
            self.stats.runs += 1
            self.stats.calls += len(batch)
            self.stats.rows += sum(len(c.rows) for c in batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            self._last_grouped = len(batch) > 1
            for call in batch:
                call.done = True
            # Hand the runner's role to the oldest waiting call (it is never in this batch).
            nxt = self._pending[0] if self._pending else None
            self._busy = nxt is not None
        for call in batch:
            call.wake.set()
        if nxt is not None:
            nxt.wake.set()
