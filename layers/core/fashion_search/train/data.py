"""Images to tensors (the bundle's preprocessing), batch augmentation and caption batches."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from fashion_search.eval.styles import StyleRow
from fashion_search.images import to_rgb
from fashion_search.model.bundle import PreprocessConfig
from fashion_search.model.preprocess import resize_for_model
from fashion_search.train.captions import Describable, sample_caption

# OpenAI CLIP's normalisation, written to preprocess_cfg.json with the model.
MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def load_image(path: str, size: int) -> np.ndarray:
    """uint8 [3, size, size] through the runtime's own resize (``resize_mode: shortest``,
    bicubic), so training sees exactly the pixels the embedder will feed the exported model."""
    cfg = PreprocessConfig(size=size, mean=MEAN, std=STD)
    with Image.open(path) as im:
        rgb = resize_for_model(to_rgb(im), cfg)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()


def load_images(rows: Sequence[StyleRow], size: int) -> torch.Tensor:
    """uint8 [N, 3, size, size]; kept in memory (a few thousand small images)."""
    return torch.from_numpy(np.stack([load_image(str(r.image), size) for r in rows]))


def normalise(images: torch.Tensor) -> torch.Tensor:
    x = images.float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips, shifts of a few pixels and mild brightness changes. No hue change: colour is a
    label here."""
    b, _, s, _ = images.shape
    x = images.float()
    flip = torch.rand(b, generator=gen) < 0.5
    x[flip] = x[flip].flip(-1)
    pad = max(2, s // 12)
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    out = torch.empty(b, 3, s, s)
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen)
    for i in range(b):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        out[i] = x[i, :, dy : dy + s, dx : dx + s]
    gain = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.16
    return (out * gain).clamp(0, 255)


class WordIndex:
    """Content words -> columns of multi-hot matrices for the caption/product consistency test."""

    def __init__(self, items: Sequence[Describable]) -> None:
        vocab = sorted(set().union(*(i.vocabulary for i in items))) if items else []
        self.index = {w: i for i, w in enumerate(vocab)}
        self.products = self.multi_hot([i.vocabulary for i in items])

    def multi_hot(self, word_sets: Sequence[frozenset[str]]) -> torch.Tensor:
        m = torch.zeros(len(word_sets), max(1, len(self.index)), dtype=torch.bool)
        for row, ws in enumerate(word_sets):
            for w in ws:
                col = self.index.get(w)
                if col is not None:
                    m[row, col] = True
        return m


def caption_batch(
    items: Sequence[Describable], rng: random.Random
) -> tuple[list[str], list[frozenset[str]]]:
    texts, word_sets = [], []
    for item in items:
        text, ws = sample_caption(item, rng)
        texts.append(text)
        word_sets.append(ws)
    return texts, word_sets
