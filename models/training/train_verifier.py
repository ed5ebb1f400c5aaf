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

from models.training.common import end_epoch, freeze_norms, one_cycle, parse, seed_all, training_parser
from models.training.verifier import AlignedVerifier, has_brand_body, load_onnx_weights
from pipeline.eval.metrics import roc_auc

PAIR_KEYS = ("crops", "masks", "fit", "family")


def load_pairs(paths: list[str]) -> dict[str, np.ndarray]:
    """One or more pair sets, concatenated (brands need not match: the verifier learns none).

    Sets made before other-brand pairs existed hold only own-brand pairs: ``same`` is all true
    and ``authentic`` is ``family < 0`` there.
    """
    parts = [dict(np.load(p)) for p in paths]
    for p, part in zip(paths, parts, strict=True):
        missing = [k for k in PAIR_KEYS if k not in part]
        if missing:
            raise SystemExit(
                f"{p}: not a verifier pair set (missing {missing}); make one with make_training_data.py pairs"
            )
        part.setdefault("same", np.ones(len(part["family"]), bool))
        part.setdefault("authentic", part["same"] & (part["family"] < 0))
    return {k: np.concatenate([part[k] for part in parts]) for k in (*PAIR_KEYS, "same", "authentic")}


Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def tensors(data: dict[str, np.ndarray]) -> Pairs:
    """Crops and masks as uint8 (stacked per batch: as floats 57,000 pairs would take 10 GB),
    fit figures (N, 4), and labels: 1 = the reference brand's authentic mark, 1 = its mark at all."""
    return (
        torch.from_numpy(data["crops"]),
        torch.from_numpy(data["masks"]),
        torch.from_numpy(data["fit"]).float(),
        torch.from_numpy(data["authentic"].astype(np.float32)),
        torch.from_numpy(data["same"].astype(np.float32)),
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
) -> tuple[np.ndarray, np.ndarray]:
    """Authentic and same-brand logits of every pair, in batches."""
    model.eval()
    with torch.no_grad():
        parts = [
            model.logits(stacked(crops, masks, slice(i, i + batch)), fit[i : i + batch])
            for i in range(0, len(crops), batch)
        ]
    return torch.cat([a for a, _ in parts]).numpy(), torch.cat([b for _, b in parts]).numpy()


def held_out(model: AlignedVerifier, val: Pairs) -> str:
    """Counterfeit AUC over own-brand pairs (as before other-brand pairs) and same-brand AUC over all."""
    authentic, same = scores(model, *val[:3])
    own = val[4].numpy() > 0.5
    auc = roc_auc(authentic[own], val[3].numpy()[own] > 0.5)
    line = f"held-out counterfeit AUC {auc:.4f}"
    if not own.all():
        line += f", same-brand AUC {roc_auc(same, own):.4f}"
    return line


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    crops, masks, fit, authentic, same = tensors(load_pairs(str(args.data).split(",")))
    val = tensors(load_pairs(str(args.val).split(","))) if args.val else None
    model = AlignedVerifier(brand_body=args.brand_body or args.authentic_only)
    # Fine-tuning an exported verifier (its batch norms folded) or only the same-brand head: the
    # batch norms stay fixed (``freeze_norms``).
    from_onnx = bool(args.init) and str(args.init).endswith(".onnx")
    brand_only = args.brand_head_only or args.brand_body
    if brand_only and args.authentic_only:
        raise SystemExit("--authentic-only trains the other part of the model than --brand-head-only/--brand-body")
    fixed_norms = from_onnx or brand_only or args.authentic_only
    started: set[str] = set()  # parameters and buffers the init provided
    if from_onnx:
        if load_onnx_weights(model, args.init):
            started = set(model.state_dict())
    elif args.init:
        # A checkpoint from before the same-brand head (or its body): those start fresh.
        state = torch.load(args.init, map_location="cpu", weights_only=False)["model"]
        model.load_state_dict(state, strict=False)
        started = set(state)
    if model.brand_body is not None and not has_brand_body(started):
        # The same-brand figure's own body starts as a copy of the shared one.
        model.brand_body.load_state_dict(model.body.state_dict())
    if brand_only:
        # Only the same-brand head (and its own body) learns: the authentic head computes exactly
        # what it did.
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith(("brand_head.", "brand_body."))
    if args.authentic_only:
        if not has_brand_body(started):
            raise SystemExit("--authentic-only starts from a checkpoint (--init .pt) whose same-brand head has a body")
        # Only the shared body and the authentic head learn: the same-brand figure, read from a body
        # of its own, computes exactly what it did.
        for name, param in model.named_parameters():
            param.requires_grad = not name.startswith(("brand_head.", "brand_body."))
    steps_per_epoch = len(crops) // args.batch
    run = one_cycle(args, model, [q for q in model.parameters() if q.requires_grad], steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    if val is not None and args.init and run.start_epoch == 0:
        print(f"start ({args.init}): {held_out(model, val)}", flush=True)
    for epoch in range(run.start_epoch, args.epochs):
        model.train()
        if fixed_norms:
            freeze_norms(model)
        gen.manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(crops), generator=gen)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            auth_logit, same_logit = model.logits(joint_turn(stacked(crops, masks, idx), gen), fit[idx])
            # Only the parts that learn count: a frozen part's loss is left out.
            same_loss = F.binary_cross_entropy_with_logits(same_logit, same[idx])
            auth_loss = F.binary_cross_entropy_with_logits(auth_logit, authentic[idx])
            loss = same_loss if brand_only else auth_loss if args.authentic_only else same_loss + auth_loss
            losses.append(run.step(loss))
        line = f"epoch {epoch} done, loss {np.mean(losses):.3f}, {time.time() - t0:.0f}s"
        if val is not None:
            line += f", {held_out(model, val)}"
        if end_epoch(args, run.ckpt, run.parts, epoch, t0, line):
            break


def main(argv: list[str] | None = None) -> None:
    p = training_parser(__doc__, "runs/verifier", 64)
    p.add_argument("--val", help="held-out pair sets (comma-separated): their counterfeit AUC after each epoch")
    p.add_argument(
        "--brand-head-only",
        action="store_true",
        help="train only the same-brand head (with --init: the authentic head and body stay as they are)",
    )
    p.add_argument(
        "--brand-body",
        action="store_true",
        help="give the same-brand head a body of its own (a copy of the shared one) and train only those",
    )
    p.add_argument(
        "--authentic-only",
        action="store_true",
        help="with --init of a model whose same-brand head has its own body: train only the shared body and "
        "the authentic head (the same-brand figure stays exactly as it is)",
    )
    train(parse(p, argv))


if __name__ == "__main__":
    main()
