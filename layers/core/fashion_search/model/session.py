"""One ONNX tower (image or text) behind a small protocol, with onnxruntime as the adapter.

A tower checks its graph's input/output names and types when it loads, knows whether its batch
axis is fixed (immich exports batch 1) and then loops, and re-normalises its outputs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from fashion_search.errors import BundleError
from fashion_search.model.base import l2_normalise

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]
    dtype: str  # onnxruntime's spelling, e.g. "tensor(float)"


class ModelSession(Protocol):
    """What a tower needs from a runtime."""

    def inputs(self) -> list[TensorSpec]: ...

    def outputs(self) -> list[TensorSpec]: ...

    def producer(self) -> str:
        """The tool that wrote the graph (onnxruntime's quantiser writes "onnx.quantize")."""
        ...

    def run(self, output: str, feeds: dict[str, NDArray[np.generic]]) -> NDArray[np.float32]: ...


class OrtSession:
    """onnxruntime on CPU; threads are configurable because Lambda and a laptop differ.

    ``spin``: let onnxruntime's worker threads busy-wait between parallel sections (its
    default). Off here by default: runs are serialised by the model queue, and between runs the
    cores are needed by tokenising, decoding, the index scan and HTTP, which spinning threads take
    from them (measured in docs/api.md: with it off, text p50 at concurrency 1 2.2x faster on the
    shared 2-core machine)."""

    def __init__(
        self, path: Path, *, intra_op_threads: int | None = None, spin: bool = False
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        options.log_severity_level = 3  # errors only: ORT's warnings are about graph rewrites
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors on bad graphs
            raise BundleError(f"cannot load ONNX model {path}: {exc}") from exc

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec(i.name, tuple(i.shape), i.type) for i in self._session.get_inputs()]

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(o.name, tuple(o.shape), o.type) for o in self._session.get_outputs()]

    def producer(self) -> str:
        return str(self._session.get_modelmeta().producer_name)

    def run(self, output: str, feeds: dict[str, NDArray[np.generic]]) -> NDArray[np.float32]:
        result = self._session.run([output], feeds)[0]
        return np.asarray(result, dtype=np.float32)


# The producer name onnxruntime.quantization stamps on the graphs it writes (quant_utils).
QUANTISER = "onnx.quantize"

_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


class Tower:
    """One tower of a CLIP model: lazily loaded (once, under a lock), batch-aware."""

    def __init__(
        self,
        path: Path,
        *,
        input_name: str,
        allowed_dtypes: tuple[str, ...],
        expected_shape: tuple[int | None, ...],
        expected_dim: int | None,
        where: str,
        intra_op_threads: int | None = None,
        spin: bool = False,
    ) -> None:
        """``expected_shape``/``expected_dim`` come from the bundle's JSON (None: anything);
        ``where`` names that JSON in error messages."""
        self.path = path
        self._expected_shape = expected_shape
        self._expected_dim = expected_dim
        self._where = where
        self.input_name = input_name
        self._allowed_dtypes = allowed_dtypes
        self._threads = intra_op_threads
        self._spin = spin
        self._lock = threading.Lock()
        self._session: ModelSession | None = None
        self.fixed_batch: int | None = None
        # True when axis 1 is symbolic (text graphs exported with a dynamic sequence axis).
        self.dynamic_length = False
        self.precision = "fp32"  # "int8" for graphs onnxruntime's quantiser wrote
        self.dim: int | None = None
        self.input_shape: tuple[int | str | None, ...] = ()
        self._input_dtype: type[np.generic] = np.float32

    def load(self) -> ModelSession:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = OrtSession(self.path, intra_op_threads=self._threads, spin=self._spin)
                    self._inspect(session)
                    self._session = session
        return self._session

    def _inspect(self, session: ModelSession) -> None:
        inputs = {spec.name: spec for spec in session.inputs()}
        spec = inputs.get(self.input_name)
        if spec is None or len(inputs) != 1:
            raise BundleError(
                f"{self.path}: expected one input named {self.input_name!r}, found {sorted(inputs)}"
            )
        if spec.dtype not in self._allowed_dtypes:
            raise BundleError(
                f"{self.path}: input {self.input_name!r} has type {spec.dtype}, "
                f"expected one of {self._allowed_dtypes}"
            )
        outputs = {o.name: o for o in session.outputs()}
        if "embedding" not in outputs:
            raise BundleError(f"{self.path}: no output named 'embedding', found {sorted(outputs)}")
        out_shape = outputs["embedding"].shape
        if len(out_shape) != 2:
            raise BundleError(f"{self.path}: output 'embedding' must be [B, D], got {out_shape}")
        self.dim = out_shape[1] if isinstance(out_shape[1], int) else None
        if self._expected_dim is not None and self.dim not in (None, self._expected_dim):
            raise BundleError(
                f"{self.path}: embedding sizes disagree: config.json embed_dim "
                f"{self._expected_dim}, this tower {self.dim}"
            )
        if len(spec.shape) != len(self._expected_shape):
            raise BundleError(
                f"{self.path}: input {self.input_name!r} must have "
                f"{len(self._expected_shape)} axes, got {list(spec.shape)}"
            )
        for axis, (got, want) in enumerate(zip(spec.shape, self._expected_shape, strict=True)):
            if isinstance(got, int) and want is not None and got != want and axis > 0:
                raise BundleError(
                    f"{self.path}: input {self.input_name!r} is {list(spec.shape)} but "
                    f"{self._where} says {want} on axis {axis}"
                )
        batch = spec.shape[0] if spec.shape else None
        self.fixed_batch = batch if isinstance(batch, int) else None
        self.dynamic_length = len(spec.shape) > 1 and not isinstance(spec.shape[1], int)
        self.precision = "int8" if session.producer() == QUANTISER else "fp32"
        self.input_shape = spec.shape
        self._input_dtype = _DTYPES.get(spec.dtype, np.float32)
        log.debug("loaded %s: input %s, fixed batch %s", self.path, spec.shape, self.fixed_batch)

    def run(self, batch: NDArray[np.generic]) -> NDArray[np.float32]:
        """Embeddings of every row of ``batch``, L2-normalised again (a cheap guard)."""
        session = self.load()
        batch = np.ascontiguousarray(batch, dtype=self._input_dtype)
        if len(batch) == 0:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        step = self.fixed_batch
        if step is None or step == len(batch):
            out = session.run("embedding", {self.input_name: batch})
        else:
            chunks = []
            for i in range(0, len(batch), step):
                chunk = batch[i : i + step]
                n = len(chunk)
                if n < step:  # a fixed batch of k > 1: pad the last chunk, drop the padding
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
                chunks.append(session.run("embedding", {self.input_name: chunk})[:n])
            out = np.concatenate(chunks, axis=0)
        if self.dim is None:
            self.dim = int(out.shape[1])
        return l2_normalise(out)
