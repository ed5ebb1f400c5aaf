"""Train the mark detector on a generated COCO set; resumable from its checkpoint.

python -m models.training.train_detector --data work/det_train --out runs/detector
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from models.training.common import parse, resume, save_checkpoint, seed_all, should_stop, training_parser
from models.training.detector import (
    INPUT_H,
    INPUT_W,
    STRIDE,
    MarkDetector,
    focal_heatmap_loss,
    giou_loss,
    make_targets,
)
from pipeline.synth.datasets import load_coco


class FrameSet(torch.utils.data.Dataset):
    """COCO frames with targets at the network's output resolution."""

    def __init__(self, coco_path: Path, size: tuple[int, int], augment: bool = True, per_mark: bool = False) -> None:
        self.items = load_coco(coco_path)
        self.width, self.height = size
        self.augment = augment
        self.per_mark = per_mark

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        path, boxes, classes = self.items[i]
        read = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if read is None:
            raise ValueError(f"{path}: not a readable image")
        img = read[:, :, ::-1]
        h, w = img.shape[:2]
        if self.augment and random.random() < 0.5:
            img = img[:, ::-1]
            boxes = boxes.copy()
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        # The graph resizes internally; resizing here too keeps batches uniform and cheap.
        iw, ih = self.width, self.height
        small = cv2.resize(np.ascontiguousarray(img), (iw, ih), interpolation=cv2.INTER_LINEAR)
        scale = np.array([iw / w, ih / h, iw / w, ih / h], np.float32)
        tb = torch.from_numpy(boxes * scale)
        heat, dist, weight = make_targets(
            tb, torch.from_numpy(classes), ih // STRIDE, iw // STRIDE, normalise=self.per_mark
        )
        return torch.from_numpy(small), heat, dist, weight


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(int(v) for v in str(args.input_size).split("x"))
    data = FrameSet(Path(args.data) / "annotations.json", (size[0], size[1]), per_mark=args.box_weight == "mark")
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=True)
    model = MarkDetector((size[0], size[1]))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    total_steps = args.epochs * len(loader)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=total_steps, pct_start=0.05)
    ckpt = out / "last.pt"
    if args.init and not ckpt.exists():
        # Convolutions do not depend on the input size: weights trained at one resolution start
        # training at another.
        model.load_state_dict(torch.load(args.init, weights_only=False)["model"])
        print(f"initialised from {args.init}")
    start_epoch = resume(ckpt, args.fresh, {"model": model, "opt": opt, "sched": sched})
    t0 = time.time()
    for epoch in range(start_epoch, args.epochs):
        model.train()
        losses = []
        for step, (frames, heat, dist, weight) in enumerate(loader):
            logits, reg = model.features(model.normalise(frames))
            pred = torch.exp(reg.clamp(max=6.0)) * STRIDE
            loss_h = focal_heatmap_loss(logits, heat)
            loss_b = giou_loss(pred, dist, weight)
            loss = loss_h + 2.0 * loss_b
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % 50 == 0:
                print(
                    f"epoch {epoch} step {step}/{len(loader)} loss {np.mean(losses[-50:]):.3f} "
                    f"({time.time() - t0:.0f}s)",
                    flush=True,
                )
        save_checkpoint(
            ckpt,
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "epoch": epoch,
                "input_size": f"{size[0]}x{size[1]}",
            },
        )
        print(f"epoch {epoch} done, loss {np.mean(losses):.3f}, {time.time() - t0:.0f}s", flush=True)
        if should_stop(args, epoch, t0):
            break


def main(argv: list[str] | None = None) -> None:
    p = training_parser(__doc__, "runs/detector", 16)
    p.add_argument("--input-size", default=f"{INPUT_W}x{INPUT_H}", help="network input WxH")
    p.add_argument(
        "--box-weight",
        choices=["cell", "mark"],
        default="cell",
        help="box-loss weight: per output cell (stages 1-4), or summing to one per mark",
    )
    train(parse(p, argv))


if __name__ == "__main__":
    main()
