"""OnnxClipEmbedder behaviour: batches, per-item errors, resize modes, identity, loading."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fashion_search.errors import ConfigError, InvalidInput
from fashion_search.model.base import Embedder
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.model.loader import load_embedder
from fashion_search.settings import ModelSettings, Settings
from PIL import Image

from tests.fixtures.bundles import TINY_DIM, TINY_IMAGE_SIZE, tiny_clip_model


def png(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_implements_the_embedder_protocol(tiny_embedder: OnnxClipEmbedder) -> None:
    assert isinstance(tiny_embedder, Embedder)
    assert tiny_embedder.dim == TINY_DIM
    assert tiny_embedder.model_id.startswith("tiny-clip-")


def test_bad_items_fail_alone(tiny_embedder: OnnxClipEmbedder) -> None:
    good = [png(80, 60, 1), png(50, 90, 2)]
    big = png(300, 300, 3)
    small_cap = OnnxClipEmbedder(
        tiny_embedder.bundle, intra_op_threads=1, batch_size=2, max_image_bytes=len(big) - 1
    )
    inputs: list[Any] = [good[0], b"not an image", big, Image.open(io.BytesIO(good[1])), b""]
    result = small_cap.embed_images(inputs)
    assert len(result) == 5 and sorted(result.errors) == [1, 2, 4]
    assert "over the limit" in result.errors[2].message
    assert not result.vectors[[1, 2, 4]].any()
    alone = tiny_embedder.embed_images(good).vectors
    np.testing.assert_allclose(result.vectors[[0, 3]], alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(result.vectors[[0, 3]], axis=1), 1.0, atol=1e-5)


def test_chunks_and_threads_keep_input_order(tiny_bundle: Path) -> None:
    images = [png(40 + 7 * i, 90 - 3 * i, seed=i) for i in range(11)]
    threaded = OnnxClipEmbedder.from_bundle(tiny_bundle, intra_op_threads=1, batch_size=4)
    serial = OnnxClipEmbedder.from_bundle(
        tiny_bundle, intra_op_threads=1, batch_size=11, decode_workers=0
    )
    one_by_one = np.concatenate([serial.embed_images([im]).vectors for im in images])
    np.testing.assert_allclose(threaded.embed_images(images).vectors, one_by_one, atol=1e-5)
    np.testing.assert_allclose(serial.embed_images(images).vectors, one_by_one, atol=1e-5)
    # The images differ, so must their embeddings: a shuffled batch would be caught above.
    assert np.abs(one_by_one[0] - one_by_one[1]).max() > 1e-3


def test_texts(tiny_embedder: OnnxClipEmbedder) -> None:
    assert tiny_embedder.embed_texts([]).shape == (0, TINY_DIM)
    many = [f"item number {i}" for i in range(9)]  # > batch_size 4
    out = tiny_embedder.embed_texts(many)
    single = np.concatenate([tiny_embedder.embed_texts([t]) for t in many])
    np.testing.assert_allclose(out, single, atol=1e-5)
    with pytest.raises(InvalidInput):
        tiny_embedder.embed_texts("a string, not a list")  # type: ignore[arg-type]
    assert tiny_embedder.embed_images([]).vectors.shape == (0, TINY_DIM)


def _with_preprocess(tiny_bundle: Path, tmp_path: Path, **changes: object) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    cfg_path = copy / "visual" / "preprocess_cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(changes)
    cfg_path.write_text(json.dumps(cfg))
    return copy


def _reference(pixels_img: Image.Image) -> np.ndarray:
    """transformers' CLIP on an image that is already SxS (the processor only normalises)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    s = TINY_IMAGE_SIZE
    proc = transformers.CLIPImageProcessorPil(size={"height": s, "width": s}, do_center_crop=False)
    pixels = proc(images=pixels_img, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = tiny_clip_model().get_image_features(pixel_values=pixels).pooler_output[0].numpy()
    return np.asarray(out / np.linalg.norm(out))


def test_resize_mode_squash(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = _with_preprocess(tiny_bundle, tmp_path, resize_mode="squash")
    data = png(200, 80, seed=7)
    ours = OnnxClipEmbedder.from_bundle(bundle, intra_op_threads=1).embed_images([data])
    s = TINY_IMAGE_SIZE
    squashed = Image.open(io.BytesIO(data)).convert("RGB").resize((s, s), Image.Resampling.BICUBIC)
    assert float(ours.vectors[0] @ _reference(squashed)) >= 0.999


def test_resize_mode_longest_pads(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = _with_preprocess(tiny_bundle, tmp_path, resize_mode="longest", fill_color=[0, 0, 0])
    data = png(200, 80, seed=8)
    ours = OnnxClipEmbedder.from_bundle(bundle, intra_op_threads=1).embed_images([data])
    s = TINY_IMAGE_SIZE
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((s, 26), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (s, s), (0, 0, 0))
    canvas.paste(img, (0, (s - 26) // 2))
    assert float(ours.vectors[0] @ _reference(canvas)) >= 0.999
    shortest = OnnxClipEmbedder.from_bundle(tiny_bundle, intra_op_threads=1).embed_images([data])
    assert float(ours.vectors[0] @ shortest.vectors[0]) < 0.999  # the mode really changed it


def test_model_id_follows_content(tiny_bundle: Path, tmp_path: Path) -> None:
    same = tmp_path / "tiny-clip"
    shutil.copytree(tiny_bundle, same)
    assert (
        OnnxClipEmbedder.from_bundle(same).model_id
        == OnnxClipEmbedder.from_bundle(tiny_bundle).model_id
    )
    changed = _with_preprocess(tiny_bundle, tmp_path, interpolation="bilinear")
    assert (
        OnnxClipEmbedder.from_bundle(changed).model_id.split("-")[-1]
        != (OnnxClipEmbedder.from_bundle(tiny_bundle).model_id.split("-")[-1])
    )


def test_load_embedder_from_settings(tiny_bundle: Path, tmp_path: Path) -> None:
    settings = Settings(model=ModelSettings(bundle=tiny_bundle, intra_op_threads=1, batch_size=3))
    embedder = load_embedder(settings)
    assert embedder.batch_size == 3 and embedder.dim == TINY_DIM
    with pytest.raises(ConfigError, match="FASHION_SEARCH_MODEL__BUNDLE"):
        load_embedder(Settings(model=ModelSettings(bundle=tmp_path / "nope")))


@pytest.mark.parametrize(("spin", "allowed"), [(False, "0"), (True, "1")])
def test_onnxruntime_threads_spin_only_when_asked(
    tiny_bundle: Path, spin: bool, allowed: str
) -> None:
    """Runs are serialised by the model queue; between them, spinning onnxruntime threads
    would take the cores from decoding, the scan and HTTP (docs/api.md)."""
    settings = Settings(
        model=ModelSettings(bundle=tiny_bundle, intra_op_threads=1, spin=spin, batch_wait_ms=5)
    )
    embedder = load_embedder(settings)
    assert embedder.queue.max_wait_s == 0.005
    for tower in (embedder.visual, embedder.textual):
        options = tower.load()._session.get_session_options()  # type: ignore[attr-defined]
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == allowed


def test_load_embedder_from_s3(
    tiny_bundle: Path, tmp_path: Path, s3_client: Any, s3_bucket: str
) -> None:
    for file in tiny_bundle.rglob("*"):
        if file.is_file() and not file.name.startswith("."):
            key = f"models/tiny/{file.relative_to(tiny_bundle).as_posix()}"
            s3_client.upload_file(str(file), s3_bucket, key)
    settings = Settings(
        model=ModelSettings(s3_uri=f"s3://{s3_bucket}/models/tiny/", cache_dir=tmp_path / "cache")
    )
    embedder = load_embedder(settings)
    assert embedder.bundle.path.is_relative_to(tmp_path / "cache")
    local = OnnxClipEmbedder.from_bundle(tiny_bundle)
    np.testing.assert_allclose(
        embedder.embed_texts(["shoe"]), local.embed_texts(["shoe"]), atol=1e-6
    )
    # A second start reuses the copy: it works with the objects gone from S3.
    for obj in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]:
        s3_client.delete_object(Bucket=s3_bucket, Key=obj["Key"])
    assert load_embedder(settings).bundle.path == embedder.bundle.path
