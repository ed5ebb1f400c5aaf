"""What both training scripts share: seeding, the command line with YAML defaults, stopping rules."""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn


def seed_all(seed: int) -> None:
    """Seed Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_parser(description: str | None, out: str, batch: int) -> argparse.ArgumentParser:
    """The options every training run takes; a script adds its own."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file of defaults (configs/train_*.yaml); flags override it")
    p.add_argument("--data", help="training data (a COCO folder or a crops .npz)")
    p.add_argument("--out", default=out, help="checkpoint folder; training resumes from OUT/last.pt")
    p.add_argument("--epochs", type=int, default=30, help="length of the one-cycle schedule")
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=0, help="stop after the epoch that crosses this")
    p.add_argument("--stop-epoch", type=int, default=0, help="stop after this many epochs of the schedule")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--init", help="start from this checkpoint's weights (a new schedule)")
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` with the ``--config`` YAML as defaults."""
    first, _ = p.parse_known_args(argv)
    if first.config:
        values = yaml.safe_load(Path(first.config).read_text()) or {}
        p.set_defaults(**{k.replace("-", "_"): v for k, v in values.items()})
    args = p.parse_args(argv)
    if not args.data:
        p.error("--data (or data: in --config) is required")
    return args


def should_stop(args: argparse.Namespace, epoch: int, started: float) -> bool:
    """Whether to end training after ``epoch`` (``--stop-epoch`` or the time budget)."""
    if args.stop_epoch and epoch + 1 >= args.stop_epoch:
        print(f"stopped after epoch {epoch} as asked (--stop-epoch)")
        return True
    if args.max_minutes and time.time() - started > args.max_minutes * 60:
        print("time budget reached; resume later with the same command")
        return True
    return False


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (a crash mid-write leaves the previous one intact)."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def end_epoch(
    args: argparse.Namespace, ckpt: Path, parts: dict[str, Any], epoch: int, started: float, line: str
) -> bool:
    """Print the epoch's line, checkpoint every part (the keys ``resume`` reads) and say whether
    training stops here (``should_stop``)."""
    print(line, flush=True)
    save_checkpoint(ckpt, {key: part.state_dict() for key, part in parts.items()} | {"epoch": epoch})
    return should_stop(args, epoch, started)


@dataclass
class OneCycle:
    """What a training loop steps and checkpoints: AdamW on a one-cycle schedule, where it is saved
    and the epoch it starts from (``one_cycle``)."""

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.OneCycleLR
    ckpt: Path
    parts: dict[str, Any]  # what ``end_epoch`` saves and ``resume`` loads
    start_epoch: int

    def step(self, loss: torch.Tensor) -> float:
        """One optimiser step on ``loss`` and one step of the schedule; returns the loss's value."""
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        return float(loss.item())


def one_cycle(
    args: argparse.Namespace, model: torch.nn.Module, params: Iterable[torch.nn.Parameter], steps_per_epoch: int
) -> OneCycle:
    """AdamW over ``params`` on a one-cycle schedule of ``args.epochs`` epochs, resumed from
    ``args.out``/last.pt unless ``args.fresh``."""
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch)
    ckpt = Path(args.out) / "last.pt"
    parts = {"model": model, "opt": opt, "sched": sched}
    return OneCycle(opt, sched, ckpt, parts, resume(ckpt, args.fresh, parts))


def resume(path: Path, fresh: bool, parts: dict[str, Any]) -> int:
    """Load every part (model, heads, optimiser, schedule) from ``path`` when it exists and
    ``fresh`` is not set; returns the epoch to start from (0 when nothing was resumed)."""
    if fresh or not path.exists():
        return 0
    state = torch.load(path, weights_only=False)
    for key, part in parts.items():
        part.load_state_dict(state[key])
    start = int(state["epoch"]) + 1
    print(f"resumed from epoch {start}")
    return start


def load_folded_weights(model: nn.Module, path: str | Path, body: str | Sequence[str] = "body") -> None:
    """Start ``model`` from an exported ONNX file whose export folded each batch norm away.

    Each convolution of ``model.<body>`` (a sequence of ``conv_bn`` blocks; several bodies take the
    file's convolutions in turn, as the export traced them) takes the folded weight, and its batch
    norm becomes the identity carrying the folded bias, so the model computes what the file does as
    long as its batch norms stay in eval mode (``freeze_norms``). Every other parameter found in the
    file under its own name (the heads) is copied; the rest keep their weights.

    Raises:
        ValueError: the file's convolutions do not match the bodies' blocks.
    """
    import onnx
    from onnx import numpy_helper

    bodies = [body] if isinstance(body, str) else list(body)
    proto = onnx.load(str(path))
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in proto.graph.initializer}
    convs = [v for k, v in weights.items() if k.startswith("onnx::Conv_")]
    blocks = [block for name in bodies for block in getattr(model, name)]
    if len(convs) != 2 * len(blocks):
        raise ValueError(f"{path}: expected {2 * len(blocks)} folded convolution tensors, got {len(convs)}")
    with torch.no_grad():
        for block, w, b in zip(blocks, convs[0::2], convs[1::2], strict=True):
            conv, norm, *_ = block.children()  # conv_bn: convolution, batch norm, activation
            assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
            assert norm.running_mean is not None and norm.running_var is not None
            if conv.weight.shape != w.shape:
                raise ValueError(f"{path}: expected a {tuple(conv.weight.shape)} convolution, got {tuple(w.shape)}")
            conv.weight.copy_(w)
            norm.weight.fill_(1.0)
            norm.bias.copy_(b)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
        for name, tensor in model.named_parameters():
            if name in weights and not name.startswith(tuple(f"{b}." for b in bodies)):
                tensor.copy_(weights[name])


def freeze_norms(model: nn.Module) -> None:
    """Put every batch norm in eval mode (after ``model.train()``), keeping the loaded statistics."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
