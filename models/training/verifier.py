"""The verifier model: is this mark its brand's authentic mark, given the brand's mark aligned onto it?

The ECC fit of ``pipeline.infer.verifier`` lays the brand's gallery mark over the mark's crop.
This network then looks at the pair itself: the crop, the crop's ink and the aligned reference,
stacked as five channels at 96 px, beside four figures of the fit (agreement, stretch, how much
better the mirror image fits, the hand-made score). Where a stroke is heavier, a dot added or a
part missing, the ink leaves the reference in one place; one correlation over the whole mark
barely moves, a convolution sees it. A second head reads the same features for another
question: is this the brand's mark at all (authentic or a copy), or another brand's laid over it?
A fake scores low on the first head against its own brand and every neighbour alike; the second
names its brand, and turns away a mark of a brand outside the gallery. It never learns brands: a
new brand needs only its gallery image, as everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.training.common import load_folded_weights
from models.training.detector import conv_bn

SIDE = 96  # pipeline.infer.verifier.JUDGE_SIDE
FIT_FEATURES = 4


def _body() -> nn.Sequential:
    return nn.Sequential(
        conv_bn(5, 24, 2),
        conv_bn(24, 32),
        conv_bn(32, 48, 2),
        conv_bn(48, 48),
        conv_bn(48, 64, 2),
        conv_bn(64, 64),
        conv_bn(64, 96, 2),
    )


class AlignedVerifier(nn.Module):
    """(B, 96, 96, 3) uint8 crops, (B, 96, 96, 2) float masks, (B, 4) fit figures ->
    (B,) P(the brand's authentic mark), (B,) P(the brand's mark at all, authentic or a copy).

    With ``brand_body`` the same-brand head reads a convolutional body of its own (a copy of the
    shared one, fine-tuned for that figure alone) instead of sharing the authentic head's.
    """

    def __init__(self, brand_body: bool = False) -> None:
        super().__init__()
        self.body = _body()
        self.brand_body = _body() if brand_body else None
        width = 2 * 96 + FIT_FEATURES
        self.head = nn.Sequential(nn.Linear(width, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))
        self.brand_head = nn.Sequential(nn.Linear(width, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    @staticmethod
    def stack(crops_u8: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(B, 5, S, S): the crop standardised per channel (colours differ by product), then the masks."""
        c = crops_u8.permute(0, 3, 1, 2).float() / 255.0
        c = (c - c.mean((2, 3), keepdim=True)) / (c.std((2, 3), keepdim=True) + 0.05)
        return torch.cat([c, masks.permute(0, 3, 1, 2).float()], dim=1)

    @staticmethod
    def pooled(body: nn.Module, x: torch.Tensor, fit: torch.Tensor) -> torch.Tensor:
        """(B, 196): a body's pooled features of stacked pairs (``stack``) beside the fit figures."""
        f = body(x)
        return torch.cat([f.mean((2, 3)), f.amax((2, 3)), fit], dim=1)

    def logits(self, x: torch.Tensor, fit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Authentic and same-brand logits of stacked pairs, each (B,)."""
        f = self.pooled(self.body, x, fit)
        g = f if self.brand_body is None else self.pooled(self.brand_body, x, fit)
        return self.head(f)[:, 0], self.brand_head(g)[:, 0]

    def forward(
        self, crops_u8: torch.Tensor, masks: torch.Tensor, fit: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        authentic, same = self.logits(self.stack(crops_u8, masks), fit)
        return torch.sigmoid(authentic), torch.sigmoid(same)


class HandNet(nn.Module):
    """(B, S, S, 3) uint8 crops -> (B, S, S) probability that a presenter's hand covers each pixel.

    The verifier keeps what it finds out of the alignment and the judgement: a part of the mark
    hidden by a hand is not a part erased. Colour alone does not tell a hand (session 15: a third
    colour is in most crops), its shape over a good part of the crop does, so the net reads an
    eighth-scale map beside a quarter-scale one, and the crop both as seen (skin is a colour) and
    standardised (lighting varies).
    """

    def __init__(self) -> None:
        super().__init__()
        self.quarter = nn.Sequential(conv_bn(6, 16, 2), conv_bn(16, 24, 2), conv_bn(24, 24))
        self.eighth = nn.Sequential(conv_bn(24, 32, 2), conv_bn(32, 32), conv_bn(32, 32))
        self.out = nn.Conv2d(24 + 32, 1, 1)

    def logits(self, crops_u8: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) hand logits."""
        seen = crops_u8.permute(0, 3, 1, 2).float() / 255.0
        c = (seen - seen.mean((2, 3), keepdim=True)) / (seen.std((2, 3), keepdim=True) + 0.05)
        a = self.quarter(torch.cat([seen, c], dim=1))
        b = F.interpolate(self.eighth(a), scale_factor=2.0, mode="bilinear", align_corners=False)
        return F.interpolate(self.out(torch.cat([a, b], 1)), scale_factor=4.0, mode="bilinear", align_corners=False)

    def forward(self, crops_u8: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(crops_u8))[:, 0]


def has_brand_body(state: Iterable[str]) -> bool:
    """Whether a state dict's keys include a same-brand body of its own (``brand_body``)."""
    return any(k.startswith("brand_body.") for k in state)


def load_onnx_weights(model: AlignedVerifier, path: str | Path) -> bool:
    """Start ``model`` from an exported verifier's weights (the bodies and the heads).

    See ``load_folded_weights``: the model computes what the file does as long as its batch norms
    stay in eval mode (``freeze_norms``). A model with a same-brand body of its own starts from a
    file with one too, or (a file of one shared body) copies the shared body into it; the
    same-brand head, absent from older files, keeps its fresh weights. Returns whether the
    same-brand body came from the file.

    Raises:
        ValueError: the file's convolutions match neither one body nor the model's two.
    """
    if model.brand_body is None:
        load_folded_weights(model, path)
        return False
    try:
        load_folded_weights(model, path, ("body", "brand_body"))
        return True
    except ValueError:
        load_folded_weights(model, path)
        model.brand_body.load_state_dict(model.body.state_dict())
        return False
