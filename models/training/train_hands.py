"""Train the hand net (``models.training.verifier.HandNet``) on verifier pair sets that record where
a presenter's hand lies (``make_training_data.py pairs``: their ``hands``); resumable.

python -m models.training.train_hands --config configs/train_hands.yaml
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.training.common import end_epoch, one_cycle, parse, seed_all, training_parser
from models.training.verifier import HandNet

# A pixel counts as hand above this coverage (the 96 px mask is an area-shrunk 128 px one).
COVERED = 127


def load_hands(paths: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 96, 96, 3) uint8 crops and (N, 96, 96) bool hand masks of one or more pair sets."""
    crops, hands = [], []
    for p in paths:
        with np.load(p) as part:
            if "hands" not in part:
                raise SystemExit(f"{p}: records no hands; make it again with make_training_data.py pairs")
            crops.append(part["crops"])
            hands.append(part["hands"] > COVERED)
    return torch.from_numpy(np.concatenate(crops)), torch.from_numpy(np.concatenate(hands))


def turned(crops: torch.Tensor, hands: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One flip or quarter turn for a batch, crop and mask together."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.rand(1, generator=gen) < 0.5)
    if flip:
        crops, hands = crops.flip(2), hands.flip(2)
    return torch.rot90(crops, k, (1, 2)), torch.rot90(hands, k, (1, 2))


def measure(model: HandNet, crops: torch.Tensor, hands: torch.Tensor, batch: int = 512) -> dict[str, float]:
    """Pixel IoU over crops with a hand; the share of pixels called hand in crops without one, and
    the share of those crops that lose more than 2% of their pixels to it."""
    model.eval()
    with torch.no_grad():
        found = torch.cat([model(crops[i : i + batch]) > 0.5 for i in range(0, len(crops), batch)])
    has = hands.flatten(1).any(1)
    inter = (found & hands)[has].sum().item()
    union = (found | hands)[has].sum().item()
    free = found[~has].flatten(1).float().mean(1)
    return {
        "iou": inter / max(union, 1),
        "false_pixels": float(free.mean()) if len(free) else 0.0,
        "false_crops": float((free > 0.02).float().mean()) if len(free) else 0.0,
    }


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    crops, hands = load_hands(str(args.data).split(","))
    val = load_hands(str(args.val).split(",")) if args.val else None
    model = HandNet()
    steps_per_epoch = len(crops) // args.batch
    run = one_cycle(args, model, model.parameters(), steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(run.start_epoch, args.epochs):
        model.train()
        gen.manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(crops), generator=gen)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            x, y = turned(crops[idx], hands[idx], gen)
            loss = F.binary_cross_entropy_with_logits(model.logits(x)[:, 0], y.float())
            losses.append(run.step(loss))
        line = f"epoch {epoch} done, loss {np.mean(losses):.4f}, {time.time() - t0:.0f}s"
        if val is not None:
            line += ", held-out " + ", ".join(f"{k} {v:.4f}" for k, v in measure(model, *val).items())
        if end_epoch(args, run.ckpt, run.parts, epoch, t0, line):
            break


def main(argv: list[str] | None = None) -> None:
    p = training_parser(__doc__, "runs/hands", 64)
    p.add_argument("--val", help="held-out pair sets (comma-separated): IoU and false hands after each epoch")
    train(parse(p, argv))


if __name__ == "__main__":
    main()
