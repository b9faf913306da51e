"""The open_clip export on the fashion models' exact architectures, checked against open_clip.

Marqo-FashionSigLIP (``ViT-B-16-SigLIP``) and Marqo-FashionCLIP (``ViT-B-32``), random weights,
exported once per session (tests/fixtures/open_clip_models.py). The oracle is open_clip itself:
its model in PyTorch, its tokenizer, and its own preprocessing config, applied with transformers'
PIL image processors (torchvision's transforms cannot run here). Nothing in the bundle or the
runtime knows which model it is: preprocess_cfg.json and the tokenizer files carry it all.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from fashion_search.model.bundle import Bundle
from fashion_search.model.embedder import OnnxClipEmbedder
from PIL import Image, ImageOps

from tests.fixtures.open_clip_models import OpenClipCase, reference_model

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MIN_COSINE = 0.999
PIL_RESAMPLE = {"bicubic": 3, "bilinear": 2, "nearest": 0, "lanczos": 1, "box": 4}
TEXTS = [
    "a red summer dress",
    "Women Blue_Striped  T-Shirt",
    "",
    " !!! ",
    "👗👟",
    "Men's running shoes 👟 size 42, <b>black</b> &amp; white",
    "long striped woollen scarf " * 30,  # far past 64 and 77 tokens
]
ARCHS = ["siglip", "fashion_clip"]


def _picture(width: int, height: int, seed: int) -> Image.Image:
    """Smooth gradients, a block of colour and noise: an embedding that moves with every pixel."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 128 + 100 * np.sin(x / max(width / 3, 1) + seed)
    green = 128 + 100 * np.cos(y / max(height / 4, 1))
    blue = 128 + 80 * np.sin((x + y) / (width + height) * 6)
    base = np.stack([red, green, blue], axis=-1)
    base[height // 4 : height // 2, width // 3 : width // 2] = rng.uniform(0, 255, size=3)
    base += rng.normal(0, 8, size=base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def _jpeg(img: Image.Image, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92, **kwargs)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def varied_images() -> dict[str, bytes]:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display; the stored picture is landscape
    palette = _picture(333, 500, 3).quantize(colors=48)
    palette.info["transparency"] = 0  # palette index 0 transparent: flattened on white
    return {
        "exif-rotated jpeg": _jpeg(_picture(480, 320, 1), exif=exif.tobytes()),
        "cmyk jpeg": _jpeg(_picture(500, 281, 2).convert("CMYK")),
        "palette png": _png(palette),
        "tiny 3x5 png": _png(_picture(3, 5, 4)),
        "very large 3000x4000 jpeg": _jpeg(_picture(3000, 4000, 5)),
        "grey 1:8 png": _png(_picture(60, 480, 6).convert("L")),
    }


def reference_rgb(data: bytes) -> Image.Image:
    """Decoded as a viewer shows it: EXIF orientation applied, transparency on white, RGB."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def reference_processor(preprocess_cfg: dict[str, Any]) -> Any:
    """open_clip's preprocessing, as transformers' PIL processors apply it, from its own config."""
    size = preprocess_cfg["size"]
    size = size[0] if isinstance(size, list | tuple) else size
    common = {
        "image_mean": list(preprocess_cfg["mean"]),
        "image_std": list(preprocess_cfg["std"]),
        "resample": PIL_RESAMPLE[preprocess_cfg["interpolation"]],
    }
    if preprocess_cfg["resize_mode"] == "squash":
        return transformers.SiglipImageProcessorPil(size={"height": size, "width": size}, **common)
    assert preprocess_cfg["resize_mode"] == "shortest"
    return transformers.CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, **common
    )


class Oracle:
    def __init__(self, open_clip: ModuleType, case: OpenClipCase) -> None:
        self.model = reference_model(open_clip, case.source)
        self.tokenizer = open_clip.get_tokenizer(case.source)
        self.processor = reference_processor(dict(self.model.visual.preprocess_cfg))

    def images(self, datas: list[bytes]) -> np.ndarray:
        pixels = self.processor(images=[reference_rgb(d) for d in datas], return_tensors="pt")
        with torch.no_grad():
            out = self.model.encode_image(pixels["pixel_values"], normalize=True)
        return np.asarray(out.numpy(), dtype=np.float32)

    @functools.cache  # noqa: B019  (one Oracle per architecture, kept for the module)
    def texts(self) -> tuple[np.ndarray, np.ndarray]:
        """open_clip's token ids and embeddings of TEXTS."""
        ids = self.tokenizer(TEXTS)
        with torch.no_grad():
            out = self.model.encode_text(ids, normalize=True)
        return ids.numpy(), np.asarray(out.numpy(), dtype=np.float32)


@pytest.fixture(scope="module", params=ARCHS)
def pair(
    request: pytest.FixtureRequest, open_clip_module: ModuleType
) -> tuple[OpenClipCase, Oracle, OnnxClipEmbedder]:
    case: OpenClipCase = request.getfixturevalue(f"{request.param}_case")
    embedder = OnnxClipEmbedder.from_bundle(case.bundle, intra_op_threads=2, batch_size=4)
    return case, Oracle(open_clip_module, case), embedder


def test_bundle_carries_the_models_preprocessing_and_tokenizer(
    pair: tuple[OpenClipCase, Oracle, OnnxClipEmbedder],
) -> None:
    case, oracle, embedder = pair
    bundle = Bundle.open(case.bundle)
    pp = oracle.model.visual.preprocess_cfg
    assert (bundle.preprocess.resize_mode, bundle.preprocess.interpolation) == (
        pp["resize_mode"],
        pp["interpolation"],
    )
    np.testing.assert_allclose(bundle.preprocess.mean, pp["mean"])
    np.testing.assert_allclose(bundle.preprocess.std, pp["std"])
    assert bundle.context_length == oracle.tokenizer.context_length
    assert embedder.dim == bundle.embed_dim == oracle.texts()[1].shape[1]
    if case.arch == "ViT-B-16-SigLIP":
        assert (bundle.preprocess.resize_mode, bundle.preprocess.mean) == ("squash", (0.5,) * 3)
        assert bundle.context_length == 64 and embedder.dim == 768
        cfg = json.loads((case.bundle / "textual" / "tokenizer_config.json").read_text())
        assert (cfg["pad_token"], cfg["fashion_search_clean"]) == ("</s>", "canonicalize")
    else:
        assert (bundle.preprocess.resize_mode, bundle.context_length, embedder.dim) == (
            "shortest",
            77,
            512,
        )


def test_token_ids_equal_open_clips(pair: tuple[OpenClipCase, Oracle, OnnxClipEmbedder]) -> None:
    """Clean-up, vocabulary, end-of-text, truncation; and for SigLIP the padding too."""
    case, oracle, embedder = pair
    ref, _ = oracle.texts()
    ours = embedder.tokenizer(TEXTS)
    if case.arch == "ViT-B-16-SigLIP":  # pools the last position: every id counts
        np.testing.assert_array_equal(ours, ref)
    else:  # pools at the first end-of-text: ids up to it
        eot = oracle.tokenizer.eot_token_id
        for row, ref_row in zip(ours.tolist(), ref.tolist(), strict=True):
            end = ref_row.index(eot) + 1
            assert row[:end] == ref_row[:end]


def test_text_embeddings_match_open_clip(
    pair: tuple[OpenClipCase, Oracle, OnnxClipEmbedder],
) -> None:
    _, oracle, embedder = pair
    _, ref = oracle.texts()
    ours = embedder.embed_texts(TEXTS)
    cosines = np.sum(ours * ref, axis=1)
    assert cosines.min() >= MIN_COSINE, dict(zip(TEXTS, cosines.round(5).tolist(), strict=True))


def test_image_embeddings_match_open_clip(
    pair: tuple[OpenClipCase, Oracle, OnnxClipEmbedder],
) -> None:
    _, oracle, embedder = pair
    images = varied_images()
    result = embedder.embed_images(list(images.values()))
    assert result.errors == {}
    ref = oracle.images(list(images.values()))
    cosines = dict(zip(images, np.sum(result.vectors * ref, axis=1).round(5).tolist(), strict=True))
    assert min(cosines.values()) >= MIN_COSINE, cosines


def test_export_refuses_a_tokenizer_the_runtime_cannot_follow(
    open_clip_module: ModuleType, siglip_case: OpenClipCase, tmp_path: Path
) -> None:
    """strip_sep_token rewrites ids after tokenization: refused, not silently mis-exported."""
    from fashion_search.errors import BundleError
    from fashion_search.model.build.export_open_clip import write_tokenizer

    tokenizer = open_clip_module.get_tokenizer(siglip_case.source, strip_sep_token=True)
    with pytest.raises(BundleError, match="strip_sep_token"):
        write_tokenizer(tokenizer, tmp_path / "textual", context_length=64)
    assert not (tmp_path / "textual").exists()
