"""The exported bundle embeds like transformers' own CLIP with CLIP's reference preprocessing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fashion_search.model.embedder import OnnxClipEmbedder
from PIL import Image

from tests.fixtures.bundles import (
    TINY_IMAGE_SIZE,
    build_tiny_bundle,
    cached_bundle,
    tiny_clip_model,
)
from tests.fixtures.open_clip_models import open_clip_tokenizer_source

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MIN_COSINE = 0.999


def synthetic(width: int, height: int, seed: int) -> Image.Image:
    """A product-photo-like RGB picture: smooth gradients, a few shapes and mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(x / (width / 3) + seed),
            128 + 100 * np.cos(y / (height / 4) - seed),
            128 + 80 * np.sin((x + y) / (width + height) * 6),
        ],
        axis=-1,
    )
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    blob = ((x - cx) ** 2 + (y - cy) ** 2) < (min(width, height) / 4) ** 2
    base[blob] = rng.uniform(0, 255, size=3)
    base += rng.normal(0, 8, size=base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def as_mode(img: Image.Image, mode: str) -> Image.Image:
    if mode == "RGBA":
        rgba = img.convert("RGBA")
        alpha = np.full(img.size[::-1], 255, np.uint8)
        alpha[: img.height // 3] = 0  # transparent top third
        alpha[img.height // 3 : img.height // 2] = 128
        rgba.putalpha(Image.fromarray(alpha))
        return rgba
    if mode == "P":
        return img.quantize(colors=64)
    return img.convert(mode)


def encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if img.mode == "CMYK" else "PNG")
    return buf.getvalue()


def reference_rgb(img: Image.Image) -> Image.Image:
    """CLIP's ``convert("RGB")``, with transparency flattened on white as our decoder does."""
    if img.mode in ("RGBA", "P"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


@pytest.fixture(scope="module")
def reference_model() -> Any:
    return tiny_clip_model()


@pytest.fixture(scope="module")
def processor() -> Any:
    s = TINY_IMAGE_SIZE
    return transformers.CLIPImageProcessorPil(
        size={"shortest_edge": s}, crop_size={"height": s, "width": s}
    )


def reference_image_embedding(model: Any, processor: Any, img: Image.Image) -> np.ndarray:
    pixels = processor(images=reference_rgb(img), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model.get_image_features(pixel_values=pixels).pooler_output[0].numpy()
    return np.asarray(out / np.linalg.norm(out), dtype=np.float32)


CASES = [
    (64, 64, "RGB"),
    (200, 120, "RGB"),
    (37, 300, "L"),
    (640, 480, "RGBA"),
    (333, 500, "P"),
    (500, 281, "CMYK"),
    (1, 1, "RGB"),
    (1200, 900, "L"),
]


@pytest.mark.parametrize(("width", "height", "mode"), CASES)
def test_image_embedding_matches_transformers(
    width: int,
    height: int,
    mode: str,
    tiny_embedder: OnnxClipEmbedder,
    reference_model: Any,
    processor: Any,
) -> None:
    img = as_mode(synthetic(width, height, seed=width * 7 + height), mode)
    data = encode(img)
    ours = tiny_embedder.embed_images([data])
    assert ours.errors == {}
    ref = reference_image_embedding(reference_model, processor, Image.open(io.BytesIO(data)))
    assert float(ours.vectors[0] @ ref) >= MIN_COSINE


def test_jpeg_draft_decode_stays_faithful(
    tiny_embedder: OnnxClipEmbedder, reference_model: Any, processor: Any
) -> None:
    """Reduced-scale JPEG decoding (draft) must not move the embedding."""
    img = synthetic(1080, 1440, seed=3)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    ours = tiny_embedder.embed_images([buf.getvalue()]).vectors[0]
    full = Image.open(io.BytesIO(buf.getvalue()))
    full.load()
    assert float(ours @ reference_image_embedding(reference_model, processor, full)) >= MIN_COSINE


def _reference_tokenize(texts: list[str]) -> list[list[int]]:
    module = open_clip_tokenizer_source()
    rows = module.tokenize(texts, context_length=77).tolist()
    return [row[: row.index(49407) + 1] for row in rows]


def test_text_embedding_matches_transformers(
    tiny_embedder: OnnxClipEmbedder, reference_model: Any
) -> None:
    texts = ["a red summer dress", "", "Men's shoes 👟 size 42", "long " * 120]
    ours = tiny_embedder.embed_texts(texts)
    assert ours.shape == (len(texts), tiny_embedder.dim) and ours.dtype == np.float32
    for row, ids in zip(ours, _reference_tokenize(texts), strict=True):
        with torch.no_grad():
            ref = reference_model.get_text_features(input_ids=torch.tensor([ids])).pooler_output
        ref_np = ref[0].numpy() / np.linalg.norm(ref[0].numpy())
        assert float(row @ ref_np) >= MIN_COSINE


def test_fixed_batch_bundle_loops_to_the_same_result(
    tiny_bundle_fixed_batch: Path, tiny_embedder: OnnxClipEmbedder
) -> None:
    fixed = OnnxClipEmbedder.from_bundle(tiny_bundle_fixed_batch, intra_op_threads=1, batch_size=8)
    fixed.load()
    assert fixed.visual.fixed_batch == 1 and fixed.textual.fixed_batch == 1
    assert tiny_embedder.visual.fixed_batch is None
    images = [encode(synthetic(90 + 10 * i, 120, seed=i)) for i in range(5)]
    texts = ["red", "blue jeans", "", "a hat", "socks"]
    np.testing.assert_allclose(
        fixed.embed_images(images).vectors, tiny_embedder.embed_images(images).vectors, atol=1e-5
    )
    np.testing.assert_allclose(
        fixed.embed_texts(texts), tiny_embedder.embed_texts(texts), atol=1e-5
    )


@pytest.mark.parametrize(("width", "height", "mode"), CASES)
def test_preprocessed_pixels_equal_reference(
    width: int, height: int, mode: str, tiny_embedder: OnnxClipEmbedder, processor: Any
) -> None:
    """Stricter than cosine: the tensor itself (catches bilinear-for-bicubic, crop offsets)."""
    img = as_mode(synthetic(width, height, seed=width + height), mode)
    data = encode(img)
    ours = tiny_embedder.prepare_image(data)
    ref = processor(images=reference_rgb(Image.open(io.BytesIO(data))), return_tensors="np")
    np.testing.assert_allclose(ours, ref["pixel_values"][0], atol=1e-4)


LENGTHS = [
    ("red", 8),
    ("a long flowing navy blue evening dress with sequins and a matching silver clutch", 32),
    ("long " * 120, 77),  # truncated at the context, keeping the end-of-text token
]


def test_text_runs_at_its_own_length_where_the_graph_allows(
    tiny_embedder: OnnxClipEmbedder,
    tiny_bundle_fixed_batch: Path,
    reference_model: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Short queries reach the tower cut to their bucket, and embed exactly as when padded."""
    immich_like = OnnxClipEmbedder.from_bundle(tiny_bundle_fixed_batch, intra_op_threads=1)
    assert tiny_embedder.text_length == "dynamic" and immich_like.text_length == "fixed"
    shapes: list[tuple[int, ...]] = []
    real_run = tiny_embedder.textual.run

    def spy(ids: np.ndarray) -> np.ndarray:
        shapes.append(ids.shape)
        return real_run(ids)

    monkeypatch.setattr(tiny_embedder.textual, "run", spy)
    texts = [t for t, _ in LENGTHS]
    refs = _reference_tokenize(texts)
    for (text, bucket), ids in zip(LENGTHS, refs, strict=True):
        ours = tiny_embedder.embed_texts([text])
        assert shapes[-1] == (1, bucket)
        np.testing.assert_allclose(ours, immich_like.embed_texts([text]), atol=1e-5)
        with torch.no_grad():  # the oracle at the query's own length, no padding at all
            ref = reference_model.get_text_features(input_ids=torch.tensor([ids])).pooler_output
        assert float(ours[0] @ (ref[0].numpy() / np.linalg.norm(ref[0].numpy()))) >= MIN_COSINE
    mixed = tiny_embedder.embed_texts(texts[:2])  # one batch, cut to its longest query's bucket
    assert shapes[-1] == (2, 32)
    np.testing.assert_allclose(mixed, immich_like.embed_texts(texts[:2]), atol=1e-5)


def _last_position_bundle(dest: Path) -> Path:
    """The tiny CLIP, its text graph pooling at the last position (a fixed index, as SigLIP's
    does) but exported with a dynamic sequence axis: padding then changes the embedding."""
    from fashion_search.model.build.export import _normalised, export_onnx

    class LastPosition(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = tiny_clip_model()

        def forward(self, text: Any) -> Any:
            hidden = self.model.text_model(input_ids=text.long()).last_hidden_state[:, -1]
            return _normalised(self.model.text_projection(hidden))

    build_tiny_bundle(dest)
    export_onnx(LastPosition(), torch.zeros(2, 77, dtype=torch.int32),
                dest / "textual/model.onnx", input_name="text", dynamic_length=True)  # fmt: skip
    return dest


def test_a_graph_that_pools_at_a_fixed_position_keeps_the_full_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = cached_bundle("tiny-clip-last-position", _last_position_bundle)
    emb = OnnxClipEmbedder.from_bundle(bundle, intra_op_threads=1)
    emb.textual.load()
    assert emb.textual.dynamic_length  # the graph would accept short input ...
    assert emb.text_length == "fixed"  # ... but the probe saw the embedding move: not used
    shapes: list[tuple[int, ...]] = []
    real_run = emb.textual.run
    monkeypatch.setattr(emb.textual, "run", lambda ids: shapes.append(ids.shape) or real_run(ids))
    padded = emb.tokenizer(["red"])
    np.testing.assert_allclose(emb.embed_texts(["red"]), real_run(padded), atol=1e-6)
    assert shapes == [(1, 77)]
    assert float(real_run(padded[:, :8])[0] @ real_run(padded)[0]) < 0.9999
