"""A SentencePiece (Unigram) vocabulary, SigLIP's kind, through the runtime tokenizer.

Offline and fast (no model): a small Unigram tokenizer in T5's layout is trained here, saved the
way the exporter saves a model's tokenizer, and read back by the runtime (``tokenizers`` only).
The reference is what open_clip's ``HFTokenizer`` does: its own clean-up function (loaded from
open_clip's source: ``import open_clip`` needs torchvision), then the Hugging Face tokenizer
padded to the context with its pad token and truncated keeping ``</s>``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from fashion_search.model.build.clip_tokenizer_files import save_tokenizer
from fashion_search.model.tokenizer import ClipTokenizer

from tests.fixtures.open_clip_models import (
    fashion_corpus,
    open_clip_tokenizer_source,
    train_sentencepiece_tokenizer,
)

transformers = pytest.importorskip("transformers")
CONTEXT = 64
TEXTS = [
    "a red summer dress",
    "Men's BLUE denim jacket, size XL!!!",
    "Women Blue_Striped  T-Shirt",
    "",
    "   ",
    "“Smart” shoes for the ‘office’ — 100% cotton",
    "Tom &amp; Jerry &lt;3",
    "ﬁne ﬂannel shirt, ＦＵＬＬ　ＷＩＤＴＨ",
    "sunglasses 😎 with a ❤️ and 👗👠",
    "tabs\tand\nnewlines  many   spaces",
    "long striped woollen scarf " * 30,
]


@pytest.fixture(scope="module")
def open_clip_tokenizer_module() -> ModuleType:
    module = open_clip_tokenizer_source()
    return module


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    source = tmp_path_factory.mktemp("sentencepiece")
    train_sentencepiece_tokenizer(source, corpus=fashion_corpus())
    return transformers.AutoTokenizer.from_pretrained(str(source))


@pytest.fixture(scope="module")
def textual(hf_tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("bundle") / "textual"
    save_tokenizer(hf_tokenizer, dest, context_length=CONTEXT)  # what the exporter writes
    return dest


@pytest.mark.parametrize(("clean", "open_clip_clean"), [
    ("canonicalize", "_clean_canonicalize"),  # SigLIP's
    ("lower", "_clean_lower"),
])  # fmt: skip
def test_ids_equal_open_clips_hf_tokenizer(
    clean: str,
    open_clip_clean: str,
    hf_tokenizer: Any,
    textual: Path,
    open_clip_tokenizer_module: ModuleType,
) -> None:
    clean_fn = getattr(open_clip_tokenizer_module, open_clip_clean)
    ref = hf_tokenizer(
        [clean_fn(t) for t in TEXTS],
        max_length=CONTEXT,
        padding="max_length",
        truncation=True,
        return_tensors="np",
    ).input_ids
    ours = ClipTokenizer.from_files(
        textual / "tokenizer.json",
        context_length=CONTEXT,
        pad_token=hf_tokenizer.pad_token,
        eos_token=hf_tokenizer.eos_token,
        clean=clean,
    )(TEXTS)
    assert hf_tokenizer.pad_token == hf_tokenizer.eos_token == "</s>"
    np.testing.assert_array_equal(ours, ref)
    eos = hf_tokenizer.eos_token_id
    assert ours[-1, -1] == eos and ours[0, -1] == eos  # truncated keeps </s>; short is padded
    assert (ours[3] == eos).all()  # empty text: </s> then padding </s>


def test_case_matters_to_a_sentencepiece_vocabulary(textual: Path) -> None:
    """Why the clean-up is recorded per bundle: without "lower" the ids change."""

    def ids(clean: str) -> list[int]:
        tok = ClipTokenizer.from_files(textual / "tokenizer.json", context_length=CONTEXT,
                                       pad_token="</s>", eos_token="</s>", clean=clean)  # fmt: skip
        return tok.token_ids("BLUE Striped Shirt")

    assert ids("lower") == ids("canonicalize") != ids("clip")
