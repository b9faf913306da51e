"""Token ids equal OpenAI's reference tokenizer (open_clip's SimpleTokenizer over the same BPE)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from fashion_search.errors import BundleError
from fashion_search.model.build.clip_tokenizer_files import (
    clip_vocab_and_merges,
)
from fashion_search.model.bundle import Bundle
from fashion_search.model.tokenizer import ClipTokenizer, clean_text

from tests.fixtures.open_clip_models import open_clip_tokenizer_source

CORPUS = [
    "a photo of a red dress",
    "",
    "   ",
    "Men's BLUE denim jacket, size XL!!!",
    "t-shirt (cotton) — 100% organic; no polyester?",
    "“Smart” shoes for the ‘office’",
    "Crème brûlée coloured façade, naïve Zoë",
    "日本の着物 and 한국 한복 and Привет мир",
    "sunglasses 😎🕶️ with a ❤️ and 👗👠",
    "Tom &amp; Jerry &lt;3 &quot;quoted&quot;",
    "ﬁne ﬂannel shirt",
    "ＦＵＬＬ　ＷＩＤＴＨ text",
    "tabs\tand\nnewlines\r\n  many   spaces",
    "nike air max 90 white/black 2019 #sneakers @store",
    "a " * 100,
    "supercalifragilisticexpialidocious " * 20,
    "é" * 300,
]


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return open_clip_tokenizer_source()


@pytest.fixture(scope="module")
def tokenizer(tiny_bundle: Path) -> ClipTokenizer:
    return ClipTokenizer.from_bundle(Bundle.open(tiny_bundle))


def test_vocabulary_is_openais(reference: ModuleType) -> None:
    vocab, _ = clip_vocab_and_merges()
    ref = reference.SimpleTokenizer().encoder
    assert len(vocab) == len(ref) == 49408
    specials = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    assert all(vocab[specials.get(tok, tok)] == i for tok, i in ref.items())


@pytest.mark.parametrize("text", CORPUS)
def test_ids_equal_reference(text: str, reference: ModuleType, tokenizer: ClipTokenizer) -> None:
    ref = reference.tokenize([text], context_length=77)[0].numpy()
    ours = tokenizer([text])[0]
    assert ours.dtype == np.int32 and ours.shape == (77,)
    n = int(np.nonzero(ref == 49407)[0][0]) + 1  # through the end-of-text token
    assert ours[:n].tolist() == ref[:n].tolist()
    # OpenAI pads with 0; the bundle pads with its own pad token (<|endoftext|> here).
    assert (ours[n:] == tokenizer.pad_id).all()
    assert tokenizer.pad_id == 49407


def test_long_text_keeps_end_of_text(tokenizer: ClipTokenizer) -> None:
    ids = tokenizer(["word " * 200])[0]
    assert ids[0] == 49406 and ids[-1] == 49407
    assert (ids[1:-1] != 49407).all()


def test_clean_text_matches_ftfy_on_common_fixes() -> None:
    ftfy = pytest.importorskip("ftfy")
    for text in ("“Smart” ‘quotes’", "ﬁne ﬂow", "ＦＵＬＬ　ＷＩＤＴＨ", "ok  text "):
        assert clean_text(text) == " ".join(ftfy.fix_text(text).split())


def test_pad_token_from_added_token_dict(tiny_bundle: Path, tmp_path: Path) -> None:
    tok = ClipTokenizer.from_files(
        tiny_bundle / "textual" / "tokenizer.json",
        context_length=10,
        pad_token="!",
        eos_token="<|endoftext|>",
    )
    ids = tok(["hi"])[0]
    assert ids.tolist()[:3] == [49406, 1883, 49407] and (ids[3:] == 0).all()


def test_unknown_pad_token_is_a_bundle_error(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match="pad token"):
        ClipTokenizer.from_files(
            tiny_bundle / "textual" / "tokenizer.json",
            context_length=77,
            pad_token="<no-such-token>",
            eos_token="<|endoftext|>",
        )


def test_malformed_tokenizer_file_is_a_bundle_error(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(BundleError, match="cannot load tokenizer"):
        ClipTokenizer.from_files(bad, context_length=77, pad_token=None, eos_token=None)
