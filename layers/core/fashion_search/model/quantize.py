"""int8 dynamic quantisation of a bundle (``fashion-search model quantize``).

Weights of MatMul/Gemm/Conv become int8, activations are quantised on the fly: no calibration
data needed, ~4x smaller towers, and faster on CPUs with int8 dot-product instructions.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from fashion_search.errors import BundleError
from fashion_search.model.bundle import TEXTUAL_MODEL, VISUAL_MODEL, Bundle
from fashion_search.model.staging import staged_bundle

log = logging.getLogger(__name__)


def quantize_bundle(source: Path, dest: Path, *, per_channel: bool = False) -> Path:
    """Write an int8 copy of ``source`` at ``dest`` (every other file copied as is)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    bundle = Bundle.open(source)
    if dest.resolve() == bundle.path.resolve():
        raise BundleError("quantize needs a new destination, not the source bundle")
    # The result must load and agree with itself before it replaces dest.
    with staged_bundle(dest) as tmp:
        shutil.copytree(
            bundle.path, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.onnx", ".*")
        )
        for rel in (VISUAL_MODEL, TEXTUAL_MODEL):
            log.info("quantising %s", rel)
            prepared = tmp / f"{rel}.prep.onnx"
            try:
                # Shape inference + graph optimisation first, as onnxruntime recommends: the
                # quantiser then sees fused ops and quantises more of the MatMuls.
                quant_pre_process(bundle.path / rel, prepared, skip_symbolic_shape=True)
                quantize_dynamic(
                    prepared,
                    tmp / rel,
                    weight_type=QuantType.QInt8,
                    per_channel=per_channel,
                )
            except Exception as exc:  # onnxruntime.quantization raises assorted untyped errors
                raise BundleError(f"cannot quantise {bundle.path / rel}: {exc}") from exc
            finally:
                prepared.unlink(missing_ok=True)
    return dest
