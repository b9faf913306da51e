"""The training loop: contrastive loss with multi-positive targets, cosine schedule, held-out
evaluation with the same protocol ``fashion-search eval`` uses."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch.nn import functional as F

from fashion_search.errors import InvalidInput
from fashion_search.eval.protocol import TaskResult, evaluate_embeddings
from fashion_search.eval.split import Subset, select
from fashion_search.eval.styles import StyleRow
from fashion_search.train import tokenizer as toks
from fashion_search.train.captions import TEMPLATES, Describable
from fashion_search.train.data import WordIndex, augment, caption_batch, load_images, normalise
from fashion_search.train.model import TinyClip, TinyClipConfig

log = logging.getLogger(__name__)
Progress = Callable[[int, int, float], None]  # step, total steps, loss


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    seed: int = 0
    image_size: int = 64
    context_length: int = 16
    embed_dim: int = 128
    vocab_size: int = 512
    holdout: bool = True  # keep the held-out/unseen products out of training
    threads: int | None = None


@dataclass
class TrainResult:
    model: TinyClip
    tokenizer: Tokenizer
    train_products: int
    steps: int
    seconds: float
    final_loss: float
    evaluation: dict[str, list[TaskResult]] = field(default_factory=dict)


def multi_positive_loss(
    image: torch.Tensor, text: torch.Tensor, consistent: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric cross-entropy, with targets spread over every product the caption
    truthfully describes (``consistent[t, i]``), not only its own."""
    logits = scale * text @ image.T
    target = consistent.float()
    t2i = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    tt = target.T
    i2t = -(tt / tt.sum(1, keepdim=True) * F.log_softmax(logits.T, 1)).sum(1).mean()
    return (t2i + i2t) / 2


def _tokenizer_corpus(rows: Sequence[StyleRow]) -> list[str]:
    texts = [r.name for r in rows]
    texts += sorted({v for r in rows for v in r.tags.values()})
    texts += [t.format("") for t in TEMPLATES]
    return texts


def embed_texts(model: TinyClip, tok: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    ids = toks.encode(tok, list(texts), context_length=model.cfg.context_length)
    with torch.no_grad():
        out = [model.textual(torch.tensor(ids[i : i + 512])) for i in range(0, len(ids), 512)]
    return torch.cat(out).numpy().astype(np.float32)


def embed_images(model: TinyClip, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = [model.visual(normalise(images[i : i + 256])) for i in range(0, len(images), 256)]
    return torch.cat(out).numpy().astype(np.float32)


def evaluate_model(
    model: TinyClip, tok: Tokenizer, rows: Sequence[StyleRow], images: torch.Tensor
) -> list[TaskResult]:
    model.eval()
    vectors = embed_images(model, images)
    return evaluate_embeddings(rows, vectors, lambda t: embed_texts(model, tok, t))


def train(
    rows: Sequence[StyleRow],
    *,
    config: TrainConfig,
    init: tuple[TinyClip, Tokenizer] | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    train_rows = select(rows, Subset.TRAIN) if config.holdout else list(rows)
    if len(train_rows) < 2:
        raise InvalidInput(
            f"need at least 2 training products, the catalog gives {len(train_rows)}"
        )
    if init is not None:
        model, tok = init
    else:
        tok = toks.train_tokenizer(_tokenizer_corpus(train_rows), vocab_size=config.vocab_size)
        cfg = TinyClipConfig(
            vocab_size=tok.get_vocab_size(),
            pad_id=toks.special_id(tok, toks.PAD),
            image_size=config.image_size,
            context_length=config.context_length,
            embed_dim=config.embed_dim,
        )
        model = TinyClip(cfg)
    size, ctx = model.cfg.image_size, model.cfg.context_length
    started = time.monotonic()
    images = load_images(train_rows, size)
    items = [Describable.of(r.name, r.tags) for r in train_rows]
    words = WordIndex(items)
    log.info("training on %d products (%d images loaded)", len(train_rows), len(images))

    batch = min(config.batch_size, len(train_rows))
    steps_per_epoch = max(1, len(train_rows) // batch)
    total = steps_per_epoch * config.epochs
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "position" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "position" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": rest, "weight_decay": 0},
        ],
        lr=config.lr,
    )

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        t = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
        return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    step, loss_value = 0, float("nan")
    model.train()
    for _epoch in range(config.epochs):
        order = torch.randperm(len(train_rows), generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * batch : (b + 1) * batch]
            texts, word_sets = caption_batch([items[i] for i in idx.tolist()], rng)
            consistent = ~(
                words.multi_hot(word_sets).float() @ (~words.products[idx]).float().T
            ).bool()
            ids = torch.tensor(toks.encode(tok, texts, context_length=ctx))
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            img = model.visual(normalise(augment(images[idx], gen)))
            txt = model.textual(ids)
            loss = multi_positive_loss(img, txt, consistent, model.scale())
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            step += 1
            loss_value = float(loss.detach())
            if progress is not None:
                progress(step, total, loss_value)
    seconds = time.monotonic() - started
    result = TrainResult(model, tok, len(train_rows), step, seconds, loss_value)
    if config.holdout:
        for subset in (Subset.TEST, Subset.UNSEEN):
            test_rows = select(rows, subset)
            if len(test_rows) >= 2:
                result.evaluation[subset.value] = evaluate_model(
                    model, tok, test_rows, load_images(test_rows, size)
                )
    model.eval()
    return result


def load_rows(catalog: Path, images: Path, *, limit: int | None = None) -> list[StyleRow]:
    from fashion_search.eval.styles import read_styles

    return read_styles(catalog, images, limit=limit).rows
