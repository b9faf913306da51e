"""What a bundle is (``fashion-search model info``): opens both graphs and checks they agree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fashion_search.model.bundle import Bundle
from fashion_search.model.embedder import OnnxClipEmbedder

# What int8 costs in results: the mean overlap of each query's top-10 with the fp32 model's,
# per task and per quantised tower, lowest and highest over the two models measured by
# ``benchmarks/embed.py --parts agreement`` (ViT-B/32 random weights over 200 photo-like JPEGs;
# the trained demo model over 400 demo products). Figures and method: docs/model.md.
INT8_AGREEMENT: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("int8", "fp32"): {"image->image": (0.976, 0.988), "text->image": (0.914, 0.978)},
    ("fp32", "int8"): {"image->image": (1.0, 1.0), "text->image": (0.966, 0.990)},
    ("int8", "int8"): {"image->image": (0.976, 0.988), "text->image": (0.906, 0.978)},
}


@dataclass(frozen=True, slots=True)
class TowerInfo:
    input_name: str
    input_shape: list[int | str | None]
    batch: str  # "dynamic" or the fixed size
    dim: int | None
    size_bytes: int
    precision: str  # "fp32", or "int8" for graphs onnxruntime's quantiser wrote


@dataclass(frozen=True, slots=True)
class BundleInfo:
    path: str
    model_id: str
    dim: int
    image_size: int
    context_length: int
    preprocess: dict[str, Any]
    pad_token_id: int
    # "dynamic": queries run at their own length (next bucket of 8/16/32/...); "fixed": every
    # query is padded to context_length (the graph fixes it, or pools at a fixed position).
    text_length: str
    visual: TowerInfo
    textual: TowerInfo
    # For a bundle with an int8 tower: measured top-10 agreement with its fp32 original, per
    # task, as (lowest, highest) over the models measured (``INT8_AGREEMENT``).
    int8_agreement: dict[str, tuple[float, float]] | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def inspect_bundle(path: Path | str) -> BundleInfo:
    """Raises ``BundleError`` naming the problem for a malformed bundle."""
    bundle = Bundle.open(path)
    embedder = OnnxClipEmbedder(bundle, intra_op_threads=1)
    embedder.load()

    def tower(t: Any) -> TowerInfo:
        return TowerInfo(
            input_name=t.input_name,
            input_shape=list(t.input_shape),
            batch="dynamic" if t.fixed_batch is None else str(t.fixed_batch),
            dim=t.dim,
            size_bytes=t.path.stat().st_size,
            precision=t.precision,
        )

    return BundleInfo(
        path=str(bundle.path),
        model_id=embedder.model_id,
        dim=embedder.dim,
        image_size=bundle.image_size,
        context_length=bundle.context_length,
        preprocess=bundle.preprocess.to_json(),
        pad_token_id=embedder.tokenizer.pad_id,
        text_length=embedder.text_length,
        visual=tower(embedder.visual),
        textual=tower(embedder.textual),
        int8_agreement=INT8_AGREEMENT.get((embedder.visual.precision, embedder.textual.precision)),
    )
