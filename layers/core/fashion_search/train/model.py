"""A small two-tower CLIP: a convolutional image tower and a transformer text tower.

Small enough to train on two CPU cores in minutes and to commit (a few MB), exported to the
immich bundle layout like any other CLIP. Hyper-parameters live in ``TinyClipConfig`` and are
written to the bundle's ``config.json`` so ``--init`` can rebuild the same network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class TinyClipConfig:
    vocab_size: int
    pad_id: int
    image_size: int = 64
    context_length: int = 16
    embed_dim: int = 128
    channels: tuple[int, ...] = (32, 64, 128, 192)
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TinyClipConfig:
        raw = dict(raw)
        raw["channels"] = tuple(raw["channels"])
        return cls(**raw)


def _conv_bn(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ImageTower(nn.Module):
    """Stride-2 conv stages down to 4x4, then mean+max pooling (colour needs the mean, small
    pattern details the max) and a linear projection."""

    def __init__(self, cfg: TinyClipConfig) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        c_in = 3
        for c_out in cfg.channels:
            stages += [_conv_bn(c_in, c_out, 2), _conv_bn(c_out, c_out, 1)]
            c_in = c_out
        self.features = nn.Sequential(*stages)
        self.proj = nn.Linear(2 * c_in, cfg.embed_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.features(image)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return F.normalize(self.proj(pooled), dim=-1)


class _Block(nn.Module):
    """Pre-norm transformer block; attention written out so the ONNX graph stays plain ops."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).reshape(b, n, 3, h, w // h).permute(2, 0, 3, 1, 4).unbind(0)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(w // h)) + bias
        y = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, w)
        x = x + self.out(y)
        out: torch.Tensor = x + self.mlp(self.ln2(x))
        return out


class TextTower(nn.Module):
    """Token + position embeddings, a few blocks, mean over non-pad tokens, projection.

    Mean pooling (rather than the end-of-text token) makes word order matter little, which is
    what queries like "striped red dress" vs "red striped dress" want.
    """

    def __init__(self, cfg: TinyClipConfig) -> None:
        super().__init__()
        self.pad_id = cfg.pad_id
        self.token = nn.Embedding(cfg.vocab_size, cfg.text_width)
        self.position = nn.Parameter(torch.zeros(cfg.context_length, cfg.text_width))
        nn.init.normal_(self.position, std=0.01)
        self.blocks = nn.ModuleList(
            [_Block(cfg.text_width, cfg.text_heads) for _ in range(cfg.text_layers)]
        )
        self.ln = nn.LayerNorm(cfg.text_width)
        self.proj = nn.Linear(cfg.text_width, cfg.embed_dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        ids = text.long()
        keep = (ids != self.pad_id).float()  # [B, L]
        x = self.token(ids) + self.position[: ids.shape[1]]
        bias = ((1.0 - keep) * -1e4)[:, None, None, :]
        for block in self.blocks:
            x = block(x, bias)
        x = self.ln(x)
        pooled = (x * keep[..., None]).sum(dim=1) / keep.sum(dim=1, keepdim=True).clamp(min=1.0)
        return F.normalize(self.proj(pooled), dim=-1)


class TinyClip(nn.Module):
    def __init__(self, cfg: TinyClipConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = ImageTower(cfg)
        self.textual = TextTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()
