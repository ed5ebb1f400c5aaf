"""Train the crop embedder on generated crops; resumable from its checkpoint.

python -m models.training.train_embedder --data work/crops_train.npz --out runs/embedder

``--init`` takes a checkpoint or an exported ``embedder.onnx`` (whose training checkpoint may be
gone): the network then starts as the file computes it, its batch norms stay fixed, and the brand
proxies start at each brand's mean vector over the training crops.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from models.training.common import (
    freeze_norms,
    load_folded_weights,
    parse,
    resume,
    save_checkpoint,
    seed_all,
    should_stop,
    training_parser,
)
from models.training.embedder import MarkEmbedder, ProxyHead, embedder_loss, identity_loss


def photometric(crops: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Cheap colour augmentation on uint8 (B, H, W, 3): channel order and gain."""
    b = crops.shape[0]
    perm = torch.stack([torch.randperm(3, generator=gen) for _ in range(b)])
    x = torch.gather(crops, 3, perm[:, None, None, :].expand(-1, crops.shape[1], crops.shape[2], -1))
    gain = 0.7 + 0.6 * torch.rand(b, 1, 1, 1, generator=gen)
    return (x.float() * gain).clamp(0, 255).to(torch.uint8)


def flip_some(crops: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror each (B, H, W, 3) crop left-right, top-bottom or both (never unchanged)."""
    out = crops.clone()
    kind = torch.randint(0, 3, (len(crops),), generator=gen)
    h = (kind == 0) | (kind == 2)
    v = (kind == 1) | (kind == 2)
    out[h] = out[h].flip(2)
    out[v] = out[v].flip(1)
    return out


def load_crops(paths: list[str]) -> dict[str, np.ndarray]:
    """One or more crop sets of the same brands (in the same order), concatenated."""
    parts = [dict(np.load(p)) for p in paths]
    for p, part in zip(paths[1:], parts[1:], strict=True):
        if not np.array_equal(part["slugs"], parts[0]["slugs"]):
            raise SystemExit(f"{p}: its brands differ from {paths[0]}'s; crop sets must share brand indices")
    return {k: np.concatenate([part[k] for part in parts]) for k in ("crops", "brand", "fake")}


@torch.no_grad()
def brand_means(
    model: MarkEmbedder, crops: torch.Tensor, brand: torch.Tensor, fake: torch.Tensor, n_brands: int, batch: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each brand's mean authenticity vector over its authentic crops and mean identity vector over all.

    A brand without authentic crops keeps a random authenticity direction (its proxy learns).
    """
    model.eval()
    auth_sum = torch.randn(n_brands, model.fc.out_features) * 1e-6
    ident_sum = torch.randn(n_brands, model.identity.out_features) * 1e-6
    for i in range(0, len(crops), batch):
        auth, ident = model(crops[i : i + batch])
        b, f = brand[i : i + batch], fake[i : i + batch]
        auth_sum.index_add_(0, b[~f], auth[~f])
        ident_sum.index_add_(0, b, ident)
    return torch.nn.functional.normalize(auth_sum, dim=1), torch.nn.functional.normalize(ident_sum, dim=1)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_crops(str(args.data).split(","))
    crops = torch.from_numpy(data["crops"])
    brand = torch.from_numpy(data["brand"])
    fake = torch.from_numpy(data["fake"])
    n_brands = int(brand.max()) + 1
    model = MarkEmbedder(crop=crops.shape[1])
    head = ProxyHead(n_brands)
    id_head = ProxyHead(n_brands)
    params = list(model.parameters()) + list(head.parameters()) + list(id_head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = len(crops) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.05)
    ckpt = out / "last.pt"
    # A start from an exported file keeps its folded batch norms fixed, in this run and on resume.
    folded = bool(args.init) and str(args.init).endswith(".onnx")
    if folded and not ckpt.exists():
        load_folded_weights(model, args.init)
        auth_means, ident_means = brand_means(model, crops, brand, fake, n_brands)
        with torch.no_grad():
            head.weight.copy_(auth_means)
            id_head.weight.copy_(ident_means)
        print(f"initialised from {args.init}; brand proxies from {n_brands} brands' mean vectors")
    elif args.init and not ckpt.exists():
        # Warm start (e.g. from a one-head checkpoint): the new identity head starts fresh.
        state = torch.load(args.init, weights_only=False)
        missing, _ = model.load_state_dict(state["model"], strict=False)
        head.load_state_dict(state["head"])
        if "id_head" in state:
            id_head.load_state_dict(state["id_head"])
        print(f"initialised from {args.init}; new: {missing}")
    start_epoch = resume(
        ckpt, args.fresh, {"model": model, "head": head, "id_head": id_head, "opt": opt, "sched": sched}
    )
    refs = torch.from_numpy(np.load(args.prototypes)) if args.prototypes else None
    if refs is not None and len(refs) != n_brands:
        raise SystemExit(f"{args.prototypes}: {len(refs)} references for {n_brands} brands")
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(start_epoch, args.epochs):
        model.train()
        if folded:
            freeze_norms(model)
        order = torch.randperm(len(crops), generator=gen)
        la_hist, lf_hist, li_hist = [], [], []
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            x = photometric(crops[idx], gen)
            auth, ident = model(x)
            loss_a, loss_f = embedder_loss(head(auth), brand[idx], fake[idx])
            loss_i = identity_loss(id_head(ident), brand[idx])
            if args.identity_flips > 0:
                # Mirrored marks must keep their brand's identity (authenticity sees the mirroring).
                k = int(len(idx) * args.identity_flips)
                flipped = flip_some(x[:k], gen)
                _, ident_f = model(flipped)
                loss_i = loss_i + identity_loss(id_head(ident_f), brand[idx[:k]])
            if refs is not None:
                # Retrieval as it happens at run time: each crop, fakes included, must be nearest to
                # its own brand's gallery reference among the batch's brands and random others.
                extra = torch.randint(0, n_brands, (args.prototype_negatives,), generator=gen)
                pool = torch.unique(torch.cat([brand[idx], extra]))
                _, ref_ident = model(photometric(refs[pool], gen))
                target = torch.searchsorted(pool, brand[idx])
                loss_p = identity_loss(ident @ ref_ident.T, target)
                if args.identity_flips > 0:
                    loss_p = loss_p + identity_loss(ident_f @ ref_ident.T, target[:k])
                loss_i = loss_i + args.prototype_weight * loss_p
            loss = loss_a + loss_f + loss_i
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            la_hist.append(loss_a.item())
            lf_hist.append(loss_f.item())
            li_hist.append(loss_i.item())
            if step % 50 == 0:
                print(
                    f"epoch {epoch} step {step}/{steps_per_epoch} authentic {np.mean(la_hist[-50:]):.3f} "
                    f"fake {np.mean(lf_hist[-50:]):.3f} identity {np.mean(li_hist[-50:]):.3f} "
                    f"({time.time() - t0:.0f}s)",
                    flush=True,
                )
        state = {
            "model": model.state_dict(),
            "head": head.state_dict(),
            "id_head": id_head.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "epoch": epoch,
            "crop": model.crop,
        }
        save_checkpoint(ckpt, state)
        print(f"epoch {epoch} done ({time.time() - t0:.0f}s)", flush=True)
        if should_stop(args, epoch, t0):
            break


def main(argv: list[str] | None = None) -> None:
    p = training_parser(__doc__, "runs/embedder", 256)
    p.add_argument(
        "--identity-flips", type=float, default=0.0, help="share of each batch also seen mirrored by the identity head"
    )
    p.add_argument(
        "--prototypes", help="(brands, 64, 64, 3) uint8 .npy of each brand's gallery crop, in crop-set order"
    )
    p.add_argument("--prototype-negatives", type=int, default=128, help="other brands' references per batch")
    p.add_argument("--prototype-weight", type=float, default=1.0)
    train(parse(p, argv))


if __name__ == "__main__":
    main()
