"""The verifier model: is this mark its brand's authentic mark, given the brand's mark aligned onto it?

The ECC fit of ``pipeline.infer.verifier`` lays the brand's gallery mark over the mark's crop.
This network then looks at the pair itself: the crop, the crop's ink and the aligned reference,
stacked as five channels at 96 px, beside four figures of the fit (agreement, stretch, how much
better the mirror image fits, the hand-made score). Where a stroke is heavier, a dot added or a
part missing, the ink leaves the reference in one place; one correlation over the whole mark
barely moves, a convolution sees it. It never learns brands: a new brand needs only its gallery
image, as everywhere else.
"""

from __future__ import annotations

import torch
from torch import nn

from models.training.detector import conv_bn

SIDE = 96  # pipeline.infer.verifier.JUDGE_SIDE
FIT_FEATURES = 4


class AlignedVerifier(nn.Module):
    """(B, 96, 96, 3) uint8 crops, (B, 96, 96, 2) float masks, (B, 4) fit figures -> (B,) P(authentic)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(5, 24, 2),
            conv_bn(24, 32),
            conv_bn(32, 48, 2),
            conv_bn(48, 48),
            conv_bn(48, 64, 2),
            conv_bn(64, 64),
            conv_bn(64, 96, 2),
        )
        self.head = nn.Sequential(nn.Linear(2 * 96 + FIT_FEATURES, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    @staticmethod
    def stack(crops_u8: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(B, 5, S, S): the crop standardised per channel (colours differ by product), then the masks."""
        c = crops_u8.permute(0, 3, 1, 2).float() / 255.0
        c = (c - c.mean((2, 3), keepdim=True)) / (c.std((2, 3), keepdim=True) + 0.05)
        return torch.cat([c, masks.permute(0, 3, 1, 2).float()], dim=1)

    def logits(self, x: torch.Tensor, fit: torch.Tensor) -> torch.Tensor:
        """Authentic-vs-counterfeit logit of stacked pairs (``stack``)."""
        f = self.body(x)
        return self.head(torch.cat([f.mean((2, 3)), f.amax((2, 3)), fit], dim=1))[:, 0]

    def forward(self, crops_u8: torch.Tensor, masks: torch.Tensor, fit: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(self.stack(crops_u8, masks), fit))
