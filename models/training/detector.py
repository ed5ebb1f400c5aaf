"""The mark detector: a small single-scale anchor-free network (CenterNet-style heatmaps with
FCOS-style box distances), built for one CPU core and a GPU alike.

The ONNX graph takes uint8 RGB frames (B, H, W, 3) of any size, resizes them to the network's
input, and returns for every output cell its class scores and its box in source pixels;
thresholding and NMS happen in numpy (``pipeline.infer.detector``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# 512x288 keeps marks of 20 px in a 640x360 frame at 16 px, two output cells wide.
INPUT_W, INPUT_H = 512, 288
STRIDE = 8
NUM_CLASSES = 2


def conv_bn(cin: int, cout: int, stride: int = 1, k: int = 3, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Block(nn.Module):
    """Depthwise-separable residual block."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = conv_bn(c, c, 1, 3, groups=c)
        self.pw = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.pw(self.dw(x)))


class MarkDetector(nn.Module):
    """Backbone to stride 32, a light top-down path back to stride 8, and a shared head."""

    def __init__(self, input_size: tuple[int, int] = (INPUT_W, INPUT_H)) -> None:
        super().__init__()
        self.input_w, self.input_h = input_size
        c = [16, 32, 64, 96, 128]
        self.stem = nn.Sequential(conv_bn(3, c[0], 2), conv_bn(c[0], c[1], 2), Block(c[1]))
        self.s8 = nn.Sequential(conv_bn(c[1], c[2], 2), Block(c[2]), Block(c[2]))
        self.s16 = nn.Sequential(conv_bn(c[2], c[3], 2), Block(c[3]), Block(c[3]))
        self.s32 = nn.Sequential(conv_bn(c[3], c[4], 2), Block(c[4]), Block(c[4]))
        f = 64
        self.lat8, self.lat16, self.lat32 = (nn.Conv2d(ci, f, 1) for ci in (c[2], c[3], c[4]))
        self.head = nn.Sequential(conv_bn(f, f), conv_bn(f, f, groups=f), conv_bn(f, f, k=1))
        self.cls = nn.Conv2d(f, NUM_CLASSES, 1)
        self.reg = nn.Conv2d(f, 4, 1)
        assert self.cls.bias is not None
        nn.init.constant_(self.cls.bias, -4.0)  # start from "nothing here": stable focal loss

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw logits (B, C, h, w) and log box distances (B, 4, h, w) for normalised input."""
        x = self.stem(x)
        p8 = self.s8(x)
        p16 = self.s16(p8)
        p32 = self.s32(p16)
        t = self.lat32(p32)
        t = F.interpolate(t, size=p16.shape[-2:], mode="nearest") + self.lat16(p16)
        t = F.interpolate(t, size=p8.shape[-2:], mode="nearest") + self.lat8(p8)
        h = self.head(t)
        return self.cls(h), self.reg(h)

    def normalise(self, frames_u8: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB at any size -> (B, 3, input_h, input_w) float."""
        x = frames_u8.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(self.input_h, self.input_w), mode="bilinear", align_corners=False)
        return (x - 127.5) / 64.0

    def forward(self, frames_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames in, (B, N, 4) boxes in source pixels and (B, N, C) scores out."""
        height, width = frames_u8.shape[1], frames_u8.shape[2]
        logits, reg = self.features(self.normalise(frames_u8))
        _b, _, gh, gw = logits.shape
        scores = torch.sigmoid(logits).flatten(2).transpose(1, 2)
        dist = torch.exp(reg.clamp(max=6.0)).flatten(2).transpose(1, 2) * STRIDE
        ys = (torch.arange(gh, dtype=torch.float32) + 0.5) * STRIDE
        xs = (torch.arange(gw, dtype=torch.float32) + 0.5) * STRIDE
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        cx, cy = cx.reshape(1, -1), cy.reshape(1, -1)
        sx = width / float(self.input_w)
        sy = height / float(self.input_h)
        boxes = torch.stack(
            [
                (cx - dist[..., 0]) * sx,
                (cy - dist[..., 1]) * sy,
                (cx + dist[..., 2]) * sx,
                (cy + dist[..., 3]) * sy,
            ],
            dim=-1,
        )
        return boxes, scores


def make_targets(
    boxes: torch.Tensor, classes: torch.Tensor, gh: int, gw: int, normalise: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets for one image with boxes already in network-input pixels.

    Returns a (C, gh, gw) gaussian heatmap, (4, gh, gw) ltrb distances and a (gh, gw) box-loss
    weight. Smaller boxes win cells they share with larger ones. With ``normalise`` each box's
    weights sum to one over the cells it wins: a 16 px mark owns one or two cells and a 150 px
    product dozens, and weighting cells alike lets the large boxes decide the regression (small
    marks were found but boxed loosely, IoU 0.3-0.5).
    """
    heat = torch.zeros(NUM_CLASSES, gh, gw)
    dist = torch.zeros(4, gh, gw)
    weight = torch.zeros(gh, gw)
    best_area = torch.full((gh, gw), float("inf"))
    owner = torch.full((gh, gw), -1, dtype=torch.long)
    ys = (torch.arange(gh, dtype=torch.float32) + 0.5) * STRIDE
    xs = (torch.arange(gw, dtype=torch.float32) + 0.5) * STRIDE
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    for k, ((x1, y1, x2, y2), c) in enumerate(zip(boxes.tolist(), classes.tolist(), strict=True)):
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        bx, by = (x1 + x2) / 2, (y1 + y2) / 2
        sigx, sigy = max(w / 6, STRIDE * 0.5), max(h / 6, STRIDE * 0.5)
        g = torch.exp(-((cx - bx) ** 2) / (2 * sigx**2) - ((cy - by) ** 2) / (2 * sigy**2))
        # The cell nearest the centre is always a peak, however small the box.
        gi, gj = min(int(by // STRIDE), gh - 1), min(int(bx // STRIDE), gw - 1)
        g[gi, gj] = 1.0
        heat[c] = torch.maximum(heat[c], g)
        inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
        inside[gi, gj] = True
        pos = inside & (g > 0.3) & (w * h < best_area)
        best_area[pos] = w * h
        dist[0][pos] = (cx - x1)[pos]
        dist[1][pos] = (cy - y1)[pos]
        dist[2][pos] = (x2 - cx)[pos]
        dist[3][pos] = (y2 - cy)[pos]
        weight[pos] = g[pos]
        owner[pos] = k
    if normalise:
        for k in owner.unique().tolist():
            if k >= 0:
                won = owner == k
                weight[won] = weight[won] / weight[won].sum()
    return heat, dist.clamp(min=1.0), weight


def focal_heatmap_loss(logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of peaks."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.ge(0.999).float()
    neg = 1 - pos
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - heat) ** 4 * neg
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def giou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """GIoU loss on ltrb distances, (B, 4, h, w), weighted per cell."""
    pl, pt, pr, pb = pred.unbind(1)
    tl, tt, tr, tb = target.unbind(1)
    pa = (pl + pr) * (pt + pb)
    ta = (tl + tr) * (tt + tb)
    iw = torch.minimum(pl, tl) + torch.minimum(pr, tr)
    ih = torch.minimum(pt, tt) + torch.minimum(pb, tb)
    inter = iw * ih
    union = pa + ta - inter
    iou = inter / union.clamp(min=1e-6)
    ew = torch.maximum(pl, tl) + torch.maximum(pr, tr)
    eh = torch.maximum(pt, tt) + torch.maximum(pb, tb)
    enclose = (ew * eh).clamp(min=1e-6)
    giou = iou - (enclose - union) / enclose
    return ((1 - giou) * weight).sum() / weight.sum().clamp(min=1e-6)
