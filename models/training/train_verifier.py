"""Train the verifier on generated crops paired with their brand's gallery reference; resumable.

python -m models.training.train_verifier --data work/crops_train.npz --marks ../shared/data/logos
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from models.training.common import parse, resume, save_checkpoint, seed_all, should_stop, training_parser
from models.training.train_embedder import load_crops, photometric
from models.training.verifier import MarkVerifier, verifier_loss
from pipeline.gallery.references import plain_reference
from pipeline.synth.marks import MarkLibrary
from pipeline.synth.render import gallery_image


def brand_references(marks_dir: str, slugs: np.ndarray) -> np.ndarray:
    """The plain gallery crop of every brand, in crop-set order: (brands, 64, 64, 3) uint8."""
    library = MarkLibrary.from_folder(marks_dir, [str(s) for s in slugs])
    return np.stack(
        [plain_reference(gallery_image(library.get(str(s)).mask, library.get(str(s)).colour)) for s in slugs]
    )


def joint_flips(crops: torch.Tensor, refs: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same flip or quarter turn for a crop and its reference: new shapes, same relation."""
    k = torch.randint(0, 8, (len(crops),), generator=gen)
    out_c, out_r = crops.clone(), refs.clone()
    for kind in range(1, 8):
        sel = k == kind
        if not sel.any():
            continue
        c, r = out_c[sel], out_r[sel]
        if kind & 1:
            c, r = c.flip(2), r.flip(2)
        if kind & 2:
            c, r = c.flip(1), r.flip(1)
        if kind & 4:
            c, r = c.transpose(1, 2), r.transpose(1, 2)
        out_c[sel], out_r[sel] = c, r
    return out_c, out_r


def batch_pairs(
    crops: torch.Tensor,
    brand: torch.Tensor,
    fake: torch.Tensor,
    refs: torch.Tensor,
    idx: torch.Tensor,
    gen: torch.Generator,
    mismatch: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crops with their brand's reference; a share paired with another brand's (a deviation too)."""
    b = brand[idx].clone()
    label = fake[idx].clone()
    swap = torch.rand(len(idx), generator=gen) < mismatch
    other = torch.randint(0, len(refs), (len(idx),), generator=gen)
    swap &= other != b
    b[swap] = other[swap]
    label[swap] = True
    c, r = joint_flips(crops[idx], refs[b], gen)
    return photometric(c, gen), photometric(r, gen), label


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = str(args.data).split(",")
    data = load_crops(paths)
    refs_path = out / "references.npy"
    if refs_path.exists():
        refs_np = np.load(refs_path)
    else:
        refs_np = brand_references(args.marks, np.load(paths[0])["slugs"])
        np.save(refs_path, refs_np)
    crops, brand, fake = (torch.from_numpy(data[k]) for k in ("crops", "brand", "fake"))
    refs = torch.from_numpy(refs_np)
    model = MarkVerifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = len(crops) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.05)
    ckpt = out / "last.pt"
    start_epoch = resume(ckpt, args.fresh, {"model": model, "opt": opt, "sched": sched})
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(start_epoch, args.epochs):
        model.train()
        gen.manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(crops), generator=gen)
        losses, right = [], []
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            c, r, label = batch_pairs(crops, brand, fake, refs, idx, gen, args.mismatch)
            logits = model.logits(c, r)
            loss = verifier_loss(logits, label)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            right.append(((logits > 0) == label).float().mean().item())
            if step % 50 == 0:
                print(
                    f"epoch {epoch} step {step}/{steps_per_epoch} loss {np.mean(losses[-50:]):.3f} "
                    f"acc {np.mean(right[-50:]):.3f} ({time.time() - t0:.0f}s)",
                    flush=True,
                )
        save_checkpoint(
            ckpt, {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch}
        )
        print(f"epoch {epoch} done, loss {np.mean(losses):.3f}, {time.time() - t0:.0f}s", flush=True)
        if should_stop(args, epoch, t0):
            break


def main(argv: list[str] | None = None) -> None:
    p = training_parser(__doc__, "runs/verifier", 128)
    p.add_argument("--marks", default="../shared/data/logos", help="marks folder (for the brands' references)")
    p.add_argument("--mismatch", type=float, default=0.1, help="share of crops paired with another brand")
    train(parse(p, argv))


if __name__ == "__main__":
    main()
