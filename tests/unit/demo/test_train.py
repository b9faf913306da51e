"""Training pieces: captions, the multi-positive loss, and a bundle round trip through the
runtime embedder (the exported ONNX towers must embed like the torch model)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fashion_search.demo.catalog import generate_catalog  # noqa: E402
from fashion_search.errors import BundleError  # noqa: E402
from fashion_search.eval.styles import read_styles  # noqa: E402
from fashion_search.model.embedder import OnnxClipEmbedder  # noqa: E402
from fashion_search.train.bundle import load_for_finetune, write_bundle  # noqa: E402
from fashion_search.train.captions import Describable, sample_caption, words  # noqa: E402
from fashion_search.train.data import WordIndex, load_images  # noqa: E402
from fashion_search.train.loop import (  # noqa: E402
    TrainConfig,
    embed_images,
    embed_texts,
    multi_positive_loss,
    train,
)

TAGS = {"gender": "Women", "baseColour": "Navy Blue", "articleType": "Dresses"}


def test_phrases_keep_multi_word_colours_whole() -> None:
    item = Describable.of("Women Navy Blue Striped Dress", TAGS)
    assert item.phrases == ("Women", "Navy Blue", "Striped", "Dress")
    assert {"women", "navy", "blue", "striped", "dress", "dresses"} <= item.vocabulary


def test_captions_only_use_words_that_describe_the_product() -> None:
    item = Describable.of("Women Navy Blue Striped Dress", TAGS)
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        text, content = sample_caption(item, rng)
        assert content and content <= item.vocabulary
        assert all(w in words(text) for w in content)
        seen.add(text.lower())
    assert len(seen) > 40  # varied: subsets, orders, templates


def test_a_partial_caption_is_consistent_with_every_product_it_describes() -> None:
    items = [Describable.of(n, {}) for n in ("Women Red Dress", "Women Red Cap", "Men Blue Cap")]
    index = WordIndex(items)
    caption = index.multi_hot([words("red")])
    consistent = ~(caption.float() @ (~index.products).float().T).bool()
    assert consistent.tolist() == [[True, True, False]]


def test_with_one_positive_each_the_loss_is_clip_loss() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * txt @ img.T
    labels = torch.arange(6)
    clip = (
        torch.nn.functional.cross_entropy(logits, labels)
        + torch.nn.functional.cross_entropy(logits.T, labels)
    ) / 2
    ours = multi_positive_loss(img, txt, torch.eye(6, dtype=torch.bool), scale)
    assert float(ours) == pytest.approx(float(clip), rel=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    csv_path = generate_catalog(root / "cat", products=48)
    rows = read_styles(csv_path, root / "cat/images").rows
    result = train(rows, config=TrainConfig(epochs=2, batch_size=16, threads=1, holdout=False))
    assert result.steps == 6 and np.isfinite(result.final_loss)
    bundle = write_bundle(result.model, result.tokenizer, root / "bundle", info={"test": True})
    return bundle, csv_path


def test_the_bundle_embeds_like_the_torch_model(trained: tuple[Path, Path]) -> None:
    bundle, csv_path = trained
    embedder = OnnxClipEmbedder.from_bundle(bundle)
    model, tok = load_for_finetune(bundle)
    texts = ["Women Red Striped Dress", "a photo of navy blue jeans", "cap " * 40, "Ünïcode ✓"]
    assert np.abs(embedder.embed_texts(texts) - embed_texts(model.eval(), tok, texts)).max() < 2e-3
    rows = read_styles(csv_path, csv_path.parent / "images").rows[:6]
    onnx = embedder.embed_images([r.image.read_bytes() for r in rows])
    assert not onnx.errors
    assert np.abs(onnx.vectors - embed_images(model, load_images(rows, 64))).max() < 2e-3
    assert embedder.dim == 128


def test_fine_tuning_continues_from_a_bundle(trained: tuple[Path, Path]) -> None:
    bundle, csv_path = trained
    rows = read_styles(csv_path, csv_path.parent / "images").rows
    model, tok = load_for_finetune(bundle)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(
        rows,
        config=TrainConfig(epochs=1, batch_size=16, lr=5e-4, threads=1, holdout=False),
        init=(model, tok),
    )
    assert result.tokenizer is tok  # the vocabulary stays the bundle's
    assert any(not torch.equal(before[k], v) for k, v in result.model.state_dict().items())


def test_an_onnx_only_bundle_cannot_be_fine_tuned(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match="cannot be fine-tuned"):
        load_for_finetune(tiny_bundle)
