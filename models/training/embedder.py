"""The crop embedder: a small CNN that maps a square mark crop to two L2-normalised vectors.

- ``authenticity``: renderings of one authentic mark lie close together, counterfeits of it
  measurably further away;
- ``identity``: which brand a mark shows or imitates; counterfeits of a brand stay near it, so a
  fake is still recognised as an imitation of its brand, and unrelated marks stay far from all.

One shared body, two heads. The heads flatten the last feature map instead of pooling it, so
where a part sits in the mark (mirrored, spliced, erased) stays in the vectors. The body runs at
stride 16; a crop larger than 64 px gives a larger map, which a stride-1 average pool brings back
to 4x4, so the heads (and the weights of a 64 px network, as a warm start) fit every crop size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.training.detector import conv_bn

CROP = 64
DIM = 128


GRID = 4  # side of the feature map the heads read


class MarkEmbedder(nn.Module):
    """(B, crop, crop, 3) uint8 RGB crops -> (B, 128) authenticity and (B, 128) identity unit vectors."""

    def __init__(self, dim: int = DIM, crop: int = CROP) -> None:
        super().__init__()
        if crop % 16 or crop < 16 * GRID:
            raise ValueError(f"crop must be a multiple of 16 and at least {16 * GRID}, got {crop}")
        self.crop = crop
        self.body = nn.Sequential(
            conv_bn(3, 24, 2),
            conv_bn(24, 32),
            conv_bn(32, 48, 2),
            conv_bn(48, 48),
            conv_bn(48, 96, 2),
            conv_bn(96, 96),
            conv_bn(96, 160, 2),
        )
        side = crop // 16
        self.pool: nn.Module = nn.AvgPool2d(side - GRID + 1, stride=1) if side > GRID else nn.Identity()
        self.fc = nn.Linear(160 * GRID * GRID, dim)
        self.identity = nn.Linear(160 * GRID * GRID, dim)

    @staticmethod
    def normalise(crops_u8: torch.Tensor) -> torch.Tensor:
        """Per-crop contrast normalisation: a mark's look must not hinge on exposure."""
        x = crops_u8.permute(0, 3, 1, 2).float()
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp(min=8.0)
        return (x - mean) / std

    def forward(self, crops_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool(self.body(self.normalise(crops_u8))).flatten(1)
        return F.normalize(self.fc(x), dim=1), F.normalize(self.identity(x), dim=1)


class ProxyHead(nn.Module):
    """One learnable unit vector per training brand (for CosFace-style training only)."""

    def __init__(self, brands: int, dim: int = DIM) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(brands, dim) * 0.01)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return emb @ F.normalize(self.weight, dim=1).T


def embedder_loss(
    cos: torch.Tensor,
    brand: torch.Tensor,
    fake: torch.Tensor,
    scale: float = 30.0,
    margin: float = 0.25,
    fake_band: tuple[float, float] = (0.2, 0.5),
) -> tuple[torch.Tensor, torch.Tensor]:
    """CosFace on authentic crops; counterfeit crops held in a band of similarity to their brand.

    A counterfeit must stay recognisably an imitation of its brand (above the band's floor,
    where unrelated marks are not) yet clearly apart from the authentic mark (below its
    ceiling).

    Args:
        cos: (B, brands) cosine similarity to every brand proxy.
        brand: (B,) brand index of each crop.
        fake: (B,) True for counterfeit crops.
    """
    auth = ~fake
    loss_a = cos.new_zeros(())
    loss_f = cos.new_zeros(())
    if auth.any():
        c = cos[auth]
        onehot = F.one_hot(brand[auth], cos.shape[1]).float()
        loss_a = F.cross_entropy(scale * (c - margin * onehot), brand[auth])
    if fake.any():
        own = cos[fake].gather(1, brand[fake, None])[:, 0]
        floor, ceiling = fake_band
        loss_f = (F.softplus(scale * (own - ceiling)) + F.softplus(scale * (floor - own))).mean() / scale * 4
    return loss_a, loss_f


def identity_loss(cos: torch.Tensor, brand: torch.Tensor, scale: float = 30.0, margin: float = 0.2) -> torch.Tensor:
    """CosFace over brands for every crop, counterfeits included (they imitate their brand)."""
    onehot = F.one_hot(brand, cos.shape[1]).float()
    return F.cross_entropy(scale * (cos - margin * onehot), brand)
