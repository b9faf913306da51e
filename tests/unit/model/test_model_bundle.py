"""Malformed bundles fail clearly, in the library and in ``fashion-search model info``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fashion_search.cli import main
from fashion_search.errors import BundleError
from fashion_search.model.info import inspect_bundle

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def copy_bundle(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "b"
    shutil.copytree(src, dest)
    return dest


def write_linear_tower(
    path: Path, *, input_name: str, in_dtype: int, length: int, dim: int
) -> None:
    """A tiny valid ONNX tower: flatten -> cast -> matmul -> ``embedding`` [B, dim]."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(length, dim)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Flatten", [input_name], ["flat"], axis=1),
        helper.make_node("Cast", ["flat"], ["flat_f"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["flat_f", "w"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tower",
        [helper.make_tensor_value_info(input_name, in_dtype, ["batch", length])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_info_of_a_good_bundle(tiny_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = inspect_bundle(tiny_bundle)
    assert (info.dim, info.image_size, info.context_length) == (16, 64, 77)
    assert info.visual.batch == "dynamic" and info.textual.input_shape == ["batch", "sequence"]
    assert info.text_length == "dynamic"
    assert info.visual.precision == info.textual.precision == "fp32"
    assert info.preprocess["resize_mode"] == "shortest"
    main(["model", "info", str(tiny_bundle), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["dim"] == 16 and printed["visual"]["input_name"] == "image"
    assert printed["text_length"] == "dynamic"
    main(["model", "info", str(tiny_bundle)])
    out = capsys.readouterr().out
    assert "batch dynamic" in out and "text length:   dynamic (queries run at their own" in out


def test_info_shows_fixed_batch_and_length(
    tiny_bundle_fixed_batch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = inspect_bundle(tiny_bundle_fixed_batch)
    assert info.visual.batch == "1" and info.textual.batch == "1"
    assert info.textual.input_shape == [1, 77] and info.text_length == "fixed"
    main(["model", "info", str(tiny_bundle_fixed_batch)])
    assert "fixed (every query padded to 77 tokens)" in capsys.readouterr().out


def _expect_failure(bundle: Path, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BundleError, match=message):
        inspect_bundle(bundle)
    with pytest.raises(SystemExit) as exit_info:
        main(["model", "info", str(bundle)])
    assert exit_info.value.code == 2
    assert message.split("|")[0].replace("\\", "") in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["textual/tokenizer.json", "visual/model.onnx", "config.json"])
def test_missing_file(
    missing: str, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    (bundle / missing).unlink()
    _expect_failure(bundle, f"missing: {missing}", capsys)


def test_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _expect_failure(tmp_path / "nothing", "not a directory", capsys)


def test_wrong_input_name(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    write_linear_tower(
        bundle / "textual" / "model.onnx", input_name="input_ids", in_dtype=TensorProto.INT64,
        length=77, dim=16,
    )  # fmt: skip
    _expect_failure(bundle, "expected one input named 'text'", capsys)


def test_mismatched_tower_dims(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    write_linear_tower(
        bundle / "textual" / "model.onnx", input_name="text", in_dtype=TensorProto.INT32,
        length=77, dim=8,
    )  # fmt: skip
    _expect_failure(bundle, "embedding sizes disagree", capsys)


def test_context_length_mismatch(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["text_cfg"]["context_length"] = 64
    (bundle / "config.json").write_text(json.dumps(cfg))
    write_linear_tower(
        bundle / "textual" / "model.onnx", input_name="text", in_dtype=TensorProto.INT32,
        length=77, dim=16,
    )  # fmt: skip
    _expect_failure(bundle, "context_length 64", capsys)


def test_image_size_mismatch(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    path = bundle / "visual" / "preprocess_cfg.json"
    cfg = json.loads(path.read_text())
    cfg["size"] = [224, 224]
    path.write_text(json.dumps(cfg))
    _expect_failure(bundle, "size 224", capsys)


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("config.json", "{broken", "not valid JSON"),
        ("config.json", "[1, 2]", "JSON object"),
        ("visual/model.onnx", "not onnx", "cannot load ONNX model"),
        ("visual/preprocess_cfg.json", '{"size": 64}', "missing key 'mean'"),
    ],
)
def test_corrupt_files(
    file: str,
    content: str,
    message: str,
    tiny_bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = copy_bundle(tiny_bundle, tmp_path)
    (bundle / file).write_text(content)
    _expect_failure(bundle, message, capsys)


def test_lazy_use_checks_the_tower_too(tiny_bundle: Path, tmp_path: Path) -> None:
    from fashion_search.model.embedder import OnnxClipEmbedder

    bundle = copy_bundle(tiny_bundle, tmp_path)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["embed_dim"] = 32
    (bundle / "config.json").write_text(json.dumps(cfg))
    embedder = OnnxClipEmbedder.from_bundle(bundle)  # opening the directory is cheap and lazy
    with pytest.raises(BundleError, match="embedding sizes disagree"):
        embedder.embed_texts(["no load() called first"])
