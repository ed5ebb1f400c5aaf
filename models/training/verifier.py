"""The verifier: does a mark crop deviate from an authentic reference of its brand?

The embedder compares two vectors; a thin stroke or an added part barely moves a 128-number
summary. The verifier looks at the crop and the reference side by side instead: one shared
trunk turns each into a 16x16 feature map, the maps are compared position by position (their
difference and product), and a small head says how likely the crop is a counterfeit of that
reference. A newly enrolled brand needs only its reference: the verifier never learns brands.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.training.detector import conv_bn
from models.training.embedder import MarkEmbedder

CROP = 64


class MarkVerifier(nn.Module):
    """(B, 64, 64, 3) uint8 crops and (B, 64, 64, 3) uint8 references -> (B,) counterfeit probability."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(conv_bn(3, 24, 2), conv_bn(24, 32), conv_bn(32, 48, 2), conv_bn(48, 48))
        self.head = nn.Sequential(
            conv_bn(48 * 4, 96),
            conv_bn(96, 96, 2),
            conv_bn(96, 128),
            conv_bn(128, 160, 2),
        )
        self.fc = nn.Linear(160 * 4 * 4, 1)

    def logits(self, crops_u8: torch.Tensor, refs_u8: torch.Tensor) -> torch.Tensor:
        a = self.trunk(MarkEmbedder.normalise(crops_u8))
        b = self.trunk(MarkEmbedder.normalise(refs_u8))
        x = torch.cat([a, b, (a - b).abs(), a * b], dim=1)
        return self.fc(self.head(x).flatten(1))[:, 0]

    def forward(self, crops_u8: torch.Tensor, refs_u8: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(crops_u8, refs_u8))


def verifier_loss(logits: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: 1 for a crop that deviates from the reference, 0 for a rendering of it."""
    return F.binary_cross_entropy_with_logits(logits, fake.float())
