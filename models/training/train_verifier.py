"""Train the verifier model on aligned pairs (``make_training_data.py pairs``); resumable.

python -m models.training.train_verifier --config configs/train_verifier.yaml
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.training.common import parse, resume, save_checkpoint, seed_all, should_stop, training_parser
from models.training.verifier import AlignedVerifier
from pipeline.eval.metrics import roc_auc

PAIR_KEYS = ("crops", "masks", "fit", "family")


def load_pairs(paths: list[str]) -> dict[str, np.ndarray]:
    """One or more pair sets, concatenated (brands need not match: the verifier learns none)."""
    parts = [np.load(p) for p in paths]
    for p, part in zip(paths, parts, strict=True):
        missing = [k for k in PAIR_KEYS if k not in part]
        if missing:
            raise SystemExit(
                f"{p}: not a verifier pair set (missing {missing}); make one with make_training_data.py pairs"
            )
    return {k: np.concatenate([part[k] for part in parts]) for k in PAIR_KEYS}


def tensors(data: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crops and masks as uint8 (stacked per batch: as floats 57,000 pairs would take 10 GB),
    fit figures (N, 4) and labels (1 = counterfeit)."""
    return (
        torch.from_numpy(data["crops"]),
        torch.from_numpy(data["masks"]),
        torch.from_numpy(data["fit"]).float(),
        torch.from_numpy((data["family"] >= 0).astype(np.float32)),
    )


def stacked(crops: torch.Tensor, masks: torch.Tensor, idx: torch.Tensor | slice) -> torch.Tensor:
    """The pairs at ``idx`` as the network's (B, 5, 96, 96) input."""
    return AlignedVerifier.stack(crops[idx], masks[idx].float() / 255.0)


def joint_turn(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One flip or quarter turn for a whole batch of pairs: crop and reference move together."""
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(3)
    return torch.rot90(x, int(torch.randint(0, 4, (1,), generator=gen)), (2, 3))


def scores(
    model: AlignedVerifier, crops: torch.Tensor, masks: torch.Tensor, fit: torch.Tensor, batch: int = 512
) -> np.ndarray:
    """Authentic logits of every pair, in batches."""
    model.eval()
    with torch.no_grad():
        parts = [
            model.logits(stacked(crops, masks, slice(i, i + batch)), fit[i : i + batch])
            for i in range(0, len(crops), batch)
        ]
    return torch.cat(parts).numpy()


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    crops, masks, fit, label = tensors(load_pairs(str(args.data).split(",")))
    val = tensors(load_pairs(str(args.val).split(","))) if args.val else None
    model = AlignedVerifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(crops) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch)
    ckpt = out / "last.pt"
    start_epoch = resume(ckpt, args.fresh, {"model": model, "opt": opt, "sched": sched})
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(start_epoch, args.epochs):
        model.train()
        gen.manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(crops), generator=gen)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            logits = model.logits(joint_turn(stacked(crops, masks, idx), gen), fit[idx])
            loss = F.binary_cross_entropy_with_logits(logits, 1.0 - label[idx])  # the logit says "authentic"
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        line = f"epoch {epoch} done, loss {np.mean(losses):.3f}, {time.time() - t0:.0f}s"
        if val is not None:
            auc = roc_auc(scores(model, *val[:3]), val[3].numpy() < 0.5)
            line += f", held-out counterfeit AUC {auc:.4f}"
        print(line, flush=True)
        save_checkpoint(
            ckpt, {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch}
        )
        if should_stop(args, epoch, t0):
            break


def main(argv: list[str] | None = None) -> None:
    p = training_parser(__doc__, "runs/verifier", 64)
    p.add_argument("--val", help="held-out pair sets (comma-separated): their counterfeit AUC after each epoch")
    train(parse(p, argv))


if __name__ == "__main__":
    main()
