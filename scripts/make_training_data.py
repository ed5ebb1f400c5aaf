"""Generate the models' training and validation data from a folder of brand marks.

    python scripts/make_training_data.py detector --marks ../shared/data/logos --out work/det_train --frames 8000
    python scripts/make_training_data.py crops --marks ../shared/data/logos --out work/crops_train.npz
    python scripts/make_training_data.py references --marks ../shared/data/logos --out work/references_train.npy

Brands are split by id (``pipeline.synth.marks.is_held_out``): training sets use training
brands only, ``--split heldout`` the held-out ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.boxes import CROP_SIZE
from pipeline.gallery.references import plain_reference
from pipeline.infer.embedder import OnnxEmbedder
from pipeline.infer.models import EMBEDDER_FILE, MODELS_DIR
from pipeline.synth.counterfeit import FAMILIES
from pipeline.synth.datasets import brand_neighbours, crop_set, family_indices, pair_set, write_detector_set
from pipeline.synth.marks import MarkLibrary
from pipeline.synth.render import MARK_SIZES, TRAINING_HANDS, Hands, gallery_image


def split_folder(marks: Path, split: str) -> Path:
    """A temporary folder of links to the marks of one split (the generator takes a folder)."""
    library = MarkLibrary.from_folder(marks)
    train, held = library.split()
    chosen = train if split == "train" else held
    tmp = Path(tempfile.mkdtemp(prefix=f"marks_{split}_"))
    for mark in chosen:
        (tmp / f"{mark.slug}.png").symlink_to((marks / f"{mark.slug}.png").resolve())
    if (marks / "logos.json").exists():
        (tmp / "logos.json").symlink_to((marks / "logos.json").resolve())
    return tmp


def identity_vectors(marks: list) -> np.ndarray:
    """(M, D) identity vectors of each brand's gallery image by the shipped embedder: which brands
    a stream's mark of each would be checked against (its nearest by identity)."""
    with OnnxEmbedder(MODELS_DIR / EMBEDDER_FILE) as embedder:
        refs = [plain_reference(gallery_image(m.mask, m.colour), embedder.crop_size) for m in marks]
        return np.concatenate([embedder.embed(np.stack(refs[i : i + 256])).identity for i in range(0, len(refs), 256)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "kind",
        choices=["detector", "crops", "references", "pairs"],
        help="detector frames, embedder crops, each brand's gallery crop (in crop-set order), or verifier pairs",
    )
    p.add_argument("--marks", type=Path, required=True, help="folder of mark PNGs (+ logos.json)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", choices=["train", "heldout"], default="train")
    p.add_argument("--frames", type=int, default=8000, help="detector frames")
    p.add_argument("--authentic", type=int, default=8, help="authentic crops per brand")
    p.add_argument("--counterfeit", type=int, default=4, help="counterfeit crops per brand")
    p.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help="counterfeit families to draw from, comma-separated; repeat one to draw it more often",
    )
    p.add_argument(
        "--crop-size", type=int, default=CROP_SIZE, help="side of the square embedder crops (and references), pixels"
    )
    p.add_argument(
        "--apparent",
        type=float,
        nargs=2,
        default=MARK_SIZES,
        metavar=("SMALLEST", "LARGEST"),
        help="size range of the marks in embedder crops before the crop is scaled, pixels",
    )
    p.add_argument("--brands", type=int, default=2000, help="brands drawn for verifier pairs")
    p.add_argument(
        "--other-brands",
        type=int,
        default=0,
        help="verifier pairs per brand that lay a neighbouring brand's mark over its crop (same-brand head)",
    )
    p.add_argument(
        "--neighbours", type=int, default=5, help="nearest brands by the shipped embedder those pairs draw from"
    )
    p.add_argument(
        "--hands",
        default=TRAINING_HANDS.to_arg(),
        help="verifier pairs: ODDS,LOW,HIGH: how often a presenter's hand reaches over a mark, and how far "
        "(fractions of its size); the labelled clips' hands are 0.3,0.05,0.25",
    )
    p.add_argument(
        "--hand-net",
        type=Path,
        help="verifier pairs: a hand model (models/hands.onnx) whose findings are left out of each alignment, "
        "as the verifier does in streams",
    )
    p.add_argument(
        "--halves",
        action="store_true",
        help="verifier pairs: lay each pair out as the verifier does in streams, a poor whole fit reseated from "
        "its reference's best half and that half's alignment a pair of its own",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    if not args.marks.is_dir():
        print(f"error: marks folder not found: {args.marks}", file=sys.stderr)
        return 2
    if not 0 < args.apparent[0] <= args.apparent[1]:
        print(f"error: --apparent must be 0 < SMALLEST <= LARGEST, got {args.apparent}", file=sys.stderr)
        return 2
    if args.crop_size < 16:
        print(f"error: --crop-size must be at least 16 pixels, got {args.crop_size}", file=sys.stderr)
        return 2
    try:
        args.hands = Hands.from_arg(args.hands)
    except ValueError as exc:
        print(f"error: --hands: {exc}", file=sys.stderr)
        return 2
    if args.hand_net is not None and not args.hand_net.is_file():
        print(f"error: --hand-net: no such model: {args.hand_net}", file=sys.stderr)
        return 2
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    try:
        family_indices(families)
    except ValueError as exc:
        print(f"error: --families {args.families!r}: {exc}", file=sys.stderr)
        return 2
    folder = split_folder(args.marks, args.split)
    if not any(folder.glob("*.png")):
        print(f"error: {args.marks} holds no marks of the {args.split} split", file=sys.stderr)
        return 2
    return _make(args, folder, families)


def _make(args: argparse.Namespace, folder: Path, families: list[str]) -> int:
    if args.kind == "detector":
        path = write_detector_set(folder, args.out, args.frames, args.seed, workers=args.workers)
        print(f"wrote {path}")
    elif args.kind == "pairs":
        marks = list(MarkLibrary.from_folder(folder))
        near = brand_neighbours(identity_vectors(marks), args.neighbours) if args.other_brands else None
        data = pair_set(
            marks,
            args.brands,
            args.authentic,
            args.seed,
            args.workers,
            near,
            args.other_brands,
            args.hands,
            args.hand_net,
            families,
            args.halves,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.out, slugs=np.array([m.slug for m in marks]), **data)
        print(f"wrote {args.out}: {len(data['crops'])} verifier pairs of {min(args.brands, len(marks))} brands")
    elif args.kind == "references":
        marks = list(MarkLibrary.from_folder(folder))
        refs = np.stack([plain_reference(gallery_image(m.mask, m.colour), args.crop_size) for m in marks])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, refs)
        print(f"wrote {args.out}: the gallery crops of {len(marks)} brands")
    else:
        marks = list(MarkLibrary.from_folder(folder))
        data = crop_set(
            marks,
            args.authentic,
            args.counterfeit,
            args.seed,
            families=families,
            size=args.crop_size,
            apparent=tuple(args.apparent),
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.out, slugs=np.array([m.slug for m in marks]), **data)
        print(f"wrote {args.out}: {len(data['crops'])} crops of {len(marks)} brands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
