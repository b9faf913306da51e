"""``fashion-search embed`` and ``model pull | export | quantize``, offline, on the tiny model."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from fashion_search.cli import main
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.model.info import inspect_bundle
from PIL import Image

from tests.fixtures.bundles import tiny_clip_model

TEXTS = ["a red dress", "", "blue jeans 👖"]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    main(argv)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_embed_texts(
    tiny_bundle: Path, tiny_embedder: OnnxClipEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["embed", "--model", str(tiny_bundle)]
    rows = run_cli([*argv, *(a for t in TEXTS for a in ("--text", t))], capsys)
    assert [r["input"] for r in rows] == TEXTS
    expected = tiny_embedder.embed_texts(TEXTS)
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=1e-6)


def test_embed_images_with_per_input_errors(
    tiny_bundle: Path,
    tiny_embedder: OnnxClipEmbedder,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = tmp_path / "red flower é.png"
    Image.new("RGB", (90, 70), (200, 30, 30)).save(good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    sources = [str(good), str(tmp_path / "missing.jpg"), str(corrupt), str(good)]
    rows = run_cli(
        ["embed", "--model", str(tiny_bundle), *(a for s in sources for a in ("--image", s))],
        capsys,
    )
    assert [r["input"] for r in rows] == sources
    assert "embedding" in rows[0] and "embedding" in rows[3]
    assert "no such image file" in str(rows[1]["error"]) and "jpeg" in str(rows[2]["error"])
    expected = tiny_embedder.embed_images([good.read_bytes()]).vectors[0]
    np.testing.assert_allclose(rows[0]["embedding"], expected, atol=1e-6)  # type: ignore[arg-type]


def test_embed_needs_exactly_one_kind(
    tiny_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["embed", "--model", str(tiny_bundle)])
    assert info.value.code == 2 and "either --text" in capsys.readouterr().err


def test_pull_from_local_directory(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "models" / "tiny"
    main(["model", "pull", str(tiny_bundle), "--dest", str(dest)])
    assert (
        OnnxClipEmbedder.from_bundle(dest).model_id.split("-")[-1]
        == (OnnxClipEmbedder.from_bundle(tiny_bundle).model_id.split("-")[-1])
    )


def _fake_hub_cache(tiny_bundle: Path, cache: Path, repo: str) -> None:
    """The Hugging Face cache layout: blobs, a snapshot of symlinks, and refs/main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    for i, file in enumerate(sorted(p for p in tiny_bundle.rglob("*") if p.is_file())):
        if file.name.startswith("."):
            continue
        blob = root / "blobs" / f"blob{i}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, blob)
        link = root / "snapshots" / commit / file.relative_to(tiny_bundle)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    extra = root / "snapshots" / commit / "visual" / "fp16" / "model.armnn"
    extra.parent.mkdir(parents=True)
    extra.write_bytes(b"not for us")


def test_pull_from_hub_cache_offline(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "hf"
    _fake_hub_cache(tiny_bundle, cache, "immich-app/tiny-clip")
    dest = tmp_path / "pulled"
    main(
        [
            "model",
            "pull",
            "immich-app/tiny-clip",
            "--dest",
            str(dest),
            "--cache-dir",
            str(cache),
            "--offline",
        ]
    )
    assert not (dest / "visual" / "fp16").exists()
    assert not (dest / "textual" / "model.onnx").is_symlink()
    texts = ["socks"]
    np.testing.assert_allclose(
        OnnxClipEmbedder.from_bundle(dest).embed_texts(texts),
        OnnxClipEmbedder.from_bundle(tiny_bundle).embed_texts(texts),
    )
    with pytest.raises(SystemExit):
        main(["model", "pull", "immich-app/absent", "--cache-dir", str(cache), "--offline",
              "--dest", str(tmp_path / "x")])  # fmt: skip
    assert "not in the local Hugging Face cache" in capsys.readouterr().err


@pytest.mark.parametrize(("with_tokenizer", "fixed_length"), [(False, False), (True, True)])
def test_export_hf_clip_from_local_directory(
    with_tokenizer: bool,
    fixed_length: bool,
    tiny_bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("torch")
    source = tmp_path / "hf-clip"
    tiny_clip_model().save_pretrained(source)
    if with_tokenizer:  # as on the Hub: the source's own tokenizer is used
        from fashion_search.model.build.clip_tokenizer_files import clip_vocab_and_merges
        from transformers import CLIPTokenizerFast

        vocab, merges = clip_vocab_and_merges()
        tok = CLIPTokenizerFast(vocab=dict(vocab), merges=[tuple(m.split()) for m in merges])
        tok.save_pretrained(source)
    dest = tmp_path / "exported"
    main(["model", "export", str(source), str(dest), "--offline"]
         + (["--fixed-length"] if fixed_length else []))  # fmt: skip
    out = capsys.readouterr().out
    assert "batch dynamic" in out
    assert f"text length:   {'fixed' if fixed_length else 'dynamic'} (" in out
    ours, fixture = OnnxClipEmbedder.from_bundle(dest), OnnxClipEmbedder.from_bundle(tiny_bundle)
    np.testing.assert_allclose(ours.embed_texts(TEXTS), fixture.embed_texts(TEXTS), atol=1e-5)
    buf = io.BytesIO()
    Image.new("RGB", (100, 80), (10, 120, 200)).save(buf, format="PNG")
    np.testing.assert_allclose(
        ours.embed_images([buf.getvalue()]).vectors,
        fixture.embed_images([buf.getvalue()]).vectors,
        atol=1e-5,
    )


def test_export_open_clip_without_torchvision_is_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where open_clip cannot be imported (no torchvision matching torch), a readable error."""
    pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "open_clip", None)  # "import open_clip" raises ImportError
    with pytest.raises(SystemExit) as info:
        main(["model", "export", "ViT-B-32", str(tmp_path / "oc"), "--kind", "open_clip"])
    assert info.value.code == 2
    assert "open_clip cannot be imported" in capsys.readouterr().err
    assert not (tmp_path / "oc").exists()


def test_quantize_both_towers(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnx")
    dest = tmp_path / "tiny-int8"
    main(["model", "quantize", str(tiny_bundle), str(dest), "--tower", "visual",
          "--tower", "textual"])  # fmt: skip
    out = capsys.readouterr().out
    assert "batch dynamic, int8" in out and "batch dynamic, fp32" not in out
    assert "text->image 0.906-0.978" in out
    # Dynamic quantisation scales activations over the whole input, padding included, so the
    # probe finds that cutting the padding moves the embedding: int8 text stays at full length.
    assert "text length:   fixed" in out
    fp32, int8 = OnnxClipEmbedder.from_bundle(tiny_bundle), OnnxClipEmbedder.from_bundle(dest)
    assert int8.model_id != fp32.model_id
    size = (dest / "textual" / "model.onnx").stat().st_size
    assert size < 0.5 * (tiny_bundle / "textual" / "model.onnx").stat().st_size
    texts = [f"product {i} in red" for i in range(8)]
    cosines = np.sum(fp32.embed_texts(texts) * int8.embed_texts(texts), axis=1)
    assert cosines.min() > 0.95
    with pytest.raises(SystemExit):
        main(["model", "quantize", str(tiny_bundle), str(tiny_bundle)])
    assert "new destination" in capsys.readouterr().err


def test_quantize_defaults_to_the_image_tower(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text tower stays fp32 (and so at its own length); the image tower becomes int8."""
    pytest.importorskip("onnx")
    dest = tmp_path / "tiny-visual-int8"
    main(["model", "quantize", str(tiny_bundle), str(dest)])
    out = capsys.readouterr().out
    assert "text length:   dynamic" in out
    assert "int8:          top-10 agreement with fp32, as measured: image->image" in out
    info = inspect_bundle(dest)
    assert (info.visual.precision, info.textual.precision) == ("int8", "fp32")
    assert info.int8_agreement is not None and set(info.int8_agreement) == {
        "image->image",
        "text->image",
    }
    assert inspect_bundle(tiny_bundle).int8_agreement is None
    assert (dest / "textual/model.onnx").read_bytes() == (
        tiny_bundle / "textual/model.onnx"
    ).read_bytes()
    assert (dest / "visual/model.onnx").stat().st_size < 0.5 * (
        tiny_bundle / "visual/model.onnx"
    ).stat().st_size


def test_embed_image_urls_go_through_the_safe_fetcher(
    tiny_bundle: Path,
    tiny_embedder: OnnxClipEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import fashion_search.fetch as fetch
    from fashion_search.errors import UnsafeURL

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (0, 128, 0)).save(buf, format="JPEG")
    seen: list[str] = []

    def fake_fetch(url: str, *, settings: object, max_bytes: int | None = None) -> bytes:
        seen.append(url)
        if "internal" in url:
            raise UnsafeURL("host resolves to a non-public address")
        return buf.getvalue()

    monkeypatch.setattr(fetch, "fetch_image", fake_fetch)
    urls = ["https://shop.example/a.jpg", "http://internal.example/b.jpg"]
    rows = run_cli(
        ["embed", "--model", str(tiny_bundle), "--image", urls[0], "--image", urls[1]], capsys
    )
    assert seen == urls
    expected = tiny_embedder.embed_images([buf.getvalue()]).vectors[0]
    np.testing.assert_allclose(rows[0]["embedding"], expected, atol=1e-6)  # type: ignore[arg-type]
    assert rows[1] == {"input": urls[1], "error": "host resolves to a non-public address"}
