"""Writing generated training data: detector frames as COCO JSON, embedder crops and verifier pairs as arrays."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.boxes import CROP_SIZE
from pipeline.infer.hands import OnnxHands, hidden_part
from pipeline.infer.verifier import (
    JUDGE_SIDE,
    VerifierConfig,
    fit_reference,
    halved_fit,
    ink_candidates,
    judge_inputs,
    reference_mask,
)
from pipeline.progress import Progress
from pipeline.synth.counterfeit import FAMILIES, make_counterfeit
from pipeline.synth.marks import Mark, MarkLibrary
from pipeline.synth.render import (
    CLASS_NAMES,
    MARK_SIZES,
    TRAINING_HANDS,
    Hands,
    gallery_image,
    random_scene,
    render_mark_crop,
    render_mark_views,
)


@contextmanager
def worker_map(workers: int, chunksize: int = 1) -> Iterator[Callable[..., Iterable[Any]]]:
    """``map`` over ``workers`` processes (in this process for 1 or fewer); the pool is shut down on exit."""
    if workers <= 1:
        yield map
        return
    pool = ProcessPoolExecutor(workers)
    try:
        yield functools.partial(pool.map, chunksize=chunksize)
    finally:
        pool.shutdown()


def _detector_chunk(args: tuple[str, str, list[int], int, int, int]) -> list[dict]:
    marks_dir, out, indices, seed, width, height = args
    library = MarkLibrary.from_folder(marks_dir)
    out_dir = Path(out)
    records = []
    for idx in indices:
        rng = np.random.default_rng([seed, idx])
        count = int(rng.choice([0, 1, 1, 2, 2, 3, 4], 1)[0])
        chosen: list[tuple[np.ndarray, tuple[int, int, int]]] = []
        for _ in range(count):
            mark = library[int(rng.integers(len(library)))]
            mask = mark.mask
            if rng.random() < 0.35:  # counterfeits are marks too: the detector is brand-agnostic
                other = library[int(rng.integers(len(library)))].mask
                fake = make_counterfeit(mask, str(rng.choice(FAMILIES)), rng, other=other)
                mask = fake if fake is not None else mask
            chosen.append((mask, mark.colour))
        frame, boxes, classes = random_scene(rng, chosen, width, height)
        name = f"{idx:06d}.jpg"
        cv2.imwrite(str(out_dir / "images" / name), frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        records.append(
            {
                "id": idx,
                "file_name": f"images/{name}",
                "width": width,
                "height": height,
                "boxes": boxes.tolist(),
                "classes": classes.tolist(),
            }
        )
    return records


def write_detector_set(
    library_dir: str | Path,
    out_dir: str | Path,
    frames: int,
    seed: int,
    width: int = 640,
    height: int = 360,
    workers: int = 1,
) -> Path:
    """Render ``frames`` detector images with boxes into ``out_dir`` as COCO JSON.

    Returns the path of ``annotations.json``.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    chunks = [list(range(i, min(i + 200, frames))) for i in range(0, frames, 200)]
    jobs = [(str(library_dir), str(out), c, seed, width, height) for c in chunks]
    records: list[dict] = []
    with Progress("detector frames", frames, unit="frames") as bar, worker_map(workers) as mapper:
        for chunk in mapper(_detector_chunk, jobs):
            records.extend(chunk)
            bar.update(len(records))
    coco: dict = {
        "info": {"description": "fakewatch synthetic livestream frames", "seed": seed},
        "categories": [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)],
        "images": [],
        "annotations": [],
    }
    ann_id = 0
    for rec in sorted(records, key=lambda r: r["id"]):
        coco["images"].append({k: rec[k] for k in ("id", "file_name", "width", "height")})
        for (x1, y1, x2, y2), c in zip(rec["boxes"], rec["classes"], strict=True):
            coco["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": rec["id"],
                    "category_id": int(c),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    path = out / "annotations.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(coco))
    tmp.replace(path)
    return path


def load_coco(path: str | Path) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """Read a COCO file into (image path, (N, 4) x1y1x2y2 boxes, (N,) classes) per image."""
    path = Path(path)
    coco = json.loads(path.read_text())
    per_image: dict[int, list[dict]] = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        per_image[ann["image_id"]].append(ann)
    out = []
    for img in coco["images"]:
        anns = per_image[img["id"]]
        boxes = np.array(
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
            np.float32,
        ).reshape(-1, 4)
        classes = np.array([a["category_id"] for a in anns], np.int64)
        out.append((path.parent / img["file_name"], boxes, classes))
    return out


def family_indices(families: Sequence[str]) -> list[int]:
    """Indices into ``FAMILIES`` of ``families``; ValueError for an unknown name or none at all."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise ValueError(f"unknown counterfeit families {unknown}; expected some of {FAMILIES}")
    return [FAMILIES.index(f) for f in families]


def crop_set(
    marks: list[Mark],
    authentic: int,
    counterfeit: int,
    seed: int,
    others: list[Mark] | None = None,
    families: Sequence[str] = FAMILIES,
    size: int = CROP_SIZE,
    apparent: tuple[float, float] = MARK_SIZES,
) -> dict[str, np.ndarray]:
    """Render embedder crops of ``size`` pixels for ``marks``, each mark ``apparent`` pixels in size.

    ``families`` are the counterfeit families drawn from, uniformly; a family named twice is
    drawn twice as often (more examples of the families the embedder separates worst).

    Returns arrays: ``crops`` (N, size, size, 3) uint8, ``brand`` (N,) index into ``marks``,
    ``fake`` (N,) bool, ``family`` (N,) index into ``FAMILIES`` (-1 for authentic).
    """
    pool = others or marks
    drawn = family_indices(families)
    crops, brand, fake, family = [], [], [], []
    with Progress("crops", len(marks), unit="brands") as bar:
        for b, mark in enumerate(marks):
            rng = np.random.default_rng([seed, b])
            for k in range(authentic + counterfeit):
                mask, fam = mark.mask, -1
                if k >= authentic:
                    fam = drawn[int(rng.integers(len(drawn)))]
                    other = pool[int(rng.integers(len(pool)))].mask
                    made = make_counterfeit(mark.mask, FAMILIES[fam], rng, other=other)
                    if made is None:
                        continue
                    mask = made
                crop = render_mark_crop(rng, mask, mark.colour, size=size, apparent=apparent)
                if crop is None:
                    continue
                crops.append(crop)
                brand.append(b)
                fake.append(fam >= 0)
                family.append(fam)
            bar.update(b + 1)
    return {
        "crops": np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        "brand": np.asarray(brand, np.int64),
        "fake": np.asarray(fake, bool),
        "family": np.asarray(family, np.int64),
    }


# Verifier pairs show marks at stream sizes: the clips' marks are 71-222 px, and the verifier
# reads a 128 px crop cut from the full-resolution frame.
PAIR_MARK_SIZES = (70.0, 110.0)


PairJob = tuple[Mark, Mark | None, int, int, str | None, int, int, int, Mark | None, Hands, str | None, bool]

# Each worker process's hand net, by path: loaded once, not once per pair.
_HAND_NETS: dict[str, OnnxHands] = {}


def _hand_net(path: str) -> OnnxHands:
    if path not in _HAND_NETS:
        _HAND_NETS[path] = OnnxHands(path, threads=1)
    return _HAND_NETS[path]


def _pair(args: PairJob) -> list[tuple]:
    mark, other, pool_size, b, family, s0, s1, s2, shown, hands, hand_net, halves = args
    cv2.setNumThreads(1)
    rng = np.random.default_rng([s0, s1, s2])
    mask = mark.mask
    if family is not None:
        rng.integers(pool_size)  # the draw that picked ``other`` (in the parent, to send one mark, not all)
        made = make_counterfeit(mark.mask, family, rng, other=other.mask if other is not None else None)
        if made is None:
            return []
        mask = made
    # Any ``verifier.halves`` at or above 0 lays halves out; the figure a half's judgement must reach
    # there is the stream's gate, which training does not use.
    cfg = VerifierConfig(halves=0.0 if halves else -1.0)
    views = render_mark_views(rng, mask, mark.colour, (cfg.side,), apparent=PAIR_MARK_SIZES, hands=hands)
    if views is None:
        return []
    crop = views.crops[0]
    hand = cv2.resize(views.hands[0], (JUDGE_SIDE, JUDGE_SIDE), interpolation=cv2.INTER_AREA)
    # The reference laid over the crop: its own brand's mark, or (``shown``) another brand's, as
    # when a stream's mark is checked against a neighbouring brand it is not.
    ref_mark = shown if shown is not None else mark
    reference = reference_mask(gallery_image(ref_mark.mask, ref_mark.colour), cfg.side)
    # What the verifier's hand net finds is left out, as MarkVerifier does in streams.
    hidden = hidden_part(_hand_net(hand_net) if hand_net else None, crop)
    inks = ink_candidates(crop, cfg.clusters, hidden)
    fit = fit_reference(inks, reference, cfg, hidden)
    # Laid out as the verifier lays a mark out in streams: with halves on (``cfg``), the whole fit
    # reseated from its best half, and that half's alignment judged as a pair of its own.
    whole, half = halved_fit(inks, reference, fit, hidden, cfg)
    fits = [whole] if half is None else [whole, half]
    fam = FAMILIES.index(family) if family else -1
    out = []
    for k, laid in enumerate(fits):
        small, masks, fit_figures = judge_inputs(crop, inks, reference, laid, cfg.anisotropy_limit, hidden)
        out.append((b, fam, shown is None, small, np.round(masks * 255).astype(np.uint8), fit_figures, hand, k == 1))
    return out


def brand_neighbours(identity: np.ndarray, k: int) -> np.ndarray:
    """(M, k) indices of each brand's ``k`` nearest other brands by cosine of (M, D) identity vectors."""
    if identity.ndim != 2:
        raise ValueError(f"expected (M, D) identity vectors, got {identity.shape}")
    m = len(identity)
    k = min(k, m - 1)
    if k <= 0:
        return np.zeros((m, 0), np.int64)
    unit = identity / np.maximum(np.linalg.norm(identity, axis=1, keepdims=True), 1e-6)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k].astype(np.int64)


def pair_set(
    marks: list[Mark],
    brands: int,
    authentic: int,
    seed: int,
    workers: int = 1,
    neighbours: np.ndarray | None = None,
    others: int = 0,
    hands: Hands = TRAINING_HANDS,
    hand_net: str | Path | None = None,
    families: Sequence[str] = FAMILIES,
    halves: bool = False,
) -> dict[str, np.ndarray]:
    """Verifier training pairs: rendered crops aligned with a brand's gallery mark (``judge_inputs``).

    ``brands`` marks are drawn; each gives ``authentic`` authentic renderings and one
    counterfeit of each of ``families`` (a family repeated gives more of it; the default, every
    family once, keeps the sets made before), all at ``PAIR_MARK_SIZES``, each aligned by the shipped ECC fit
    with its own brand's mark. With ``neighbours`` (``brand_neighbours`` of ``marks``), each also
    gives ``others`` renderings (authentic and counterfeit in turn) aligned with the mark of one of
    its nearest brands instead: the pairs that teach "this is not that brand's mark at all".
    ``hands``: how often and how far a presenter's hand reaches over the rendered marks;
    ``hand_net``: the hand model (``models/hands.onnx``) whose findings are left out of each
    alignment and judgement, as in streams (None: every pixel counts). With ``halves`` each pair is
    laid out as the verifier lays out a mark in streams (``halved_fit``): where the whole fit agrees
    under ``halves_below`` it is reseated from its reference's best half, and that half's alignment
    becomes a pair of its own (``half`` true), so the model learns the alignments it is asked about.

    Returns arrays: ``crops`` (N, 96, 96, 3) uint8, ``masks`` (N, 96, 96, 2) uint8 (ink, aligned
    reference; 255 = 1), ``fit`` (N, 4) float32, ``hands`` (N, 96, 96) uint8 (255 where a
    presenter's hand covers the crop), ``brand`` (N,) index into ``marks``, ``family``
    (N,) index into ``FAMILIES`` (-1 authentic), ``fake`` (N,) bool, ``same`` (N,) bool (the
    reference is the crop's own brand's), ``authentic`` (N,) bool (the crop is the reference
    brand's authentic mark), ``half`` (N,) bool (the pair is a half's alignment).
    """
    if others and (neighbours is None or neighbours.shape[1] == 0):
        raise ValueError("other-brand pairs need each brand's neighbours")
    chosen = np.random.default_rng(seed).choice(len(marks), size=min(brands, len(marks)), replace=False)
    n = len(marks)
    net = str(hand_net) if hand_net is not None else None
    jobs: list[PairJob] = []
    for b in (int(v) for v in chosen):
        # Each sample's seed names its brand and kind, so a set extends without changing its samples.
        jobs += [
            (marks[b], None, n, b, None, seed * 1000 + 1 + 100 * k, b, 0, None, hands, net, halves)
            for k in range(authentic)
        ]
        for f, name in enumerate(families):
            other = marks[int(np.random.default_rng([seed, b, f + 1]).integers(n))]
            jobs.append((marks[b], other, n, b, name, seed, b, f + 1, None, hands, net, halves))
        for j in range(others):
            assert neighbours is not None
            pick = np.random.default_rng([seed, b, 1000 + j])
            shown = marks[int(neighbours[b, int(pick.integers(neighbours.shape[1]))])]
            if j % 2 == 0:
                jobs.append((marks[b], None, n, b, None, seed * 1000 + 2, b, 1000 + j, shown, hands, net, halves))
            else:
                f = int(pick.integers(len(FAMILIES)))
                other = marks[int(pick.integers(n))]
                jobs.append((marks[b], other, n, b, FAMILIES[f], seed, b, 1000 + j, shown, hands, net, halves))
    out = []
    with Progress("verifier pairs", len(jobs), unit="jobs") as bar, worker_map(workers, chunksize=16) as mapper:
        for i, r in enumerate(mapper(_pair, jobs)):
            out += r
            bar.update(i + 1)
    if not out:
        raise ValueError("no verifier pairs could be rendered")
    owners, fam, same, crops, masks, fit, hand, half = zip(*out, strict=True)
    family = np.asarray(fam, np.int64)
    same_brand = np.asarray(same, bool)
    return {
        "crops": np.stack(crops),
        "masks": np.stack(masks),
        "fit": np.stack(fit).astype(np.float32),
        "hands": np.stack(hand),
        "brand": np.asarray(owners, np.int64),
        "family": family,
        "fake": family >= 0,
        "half": np.asarray(half, bool),
        "same": same_brand,
        "authentic": same_brand & (family < 0),
    }
