"""Validation of the two models on held-out brands (the figures of the model card)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.boxes import CROP_SIZE
from pipeline.eval.metrics import average_precision, roc_auc
from pipeline.gallery.references import DEFAULT_VIEW_SIZES, reference_views
from pipeline.infer.detector import Detector
from pipeline.infer.embedder import Embedder, Embeddings
from pipeline.infer.hands import HandFinder, hidden_part
from pipeline.infer.verifier import (
    OnnxJudge,
    VerifierConfig,
    fit_reference,
    ink_candidates,
    judge_inputs,
    reference_mask,
)
from pipeline.synth.counterfeit import FAMILIES, make_counterfeit
from pipeline.synth.marks import Mark
from pipeline.synth.render import MARK_SIZES, gallery_image, render_mark_crops
from pipeline.types import MARK


@dataclass(frozen=True)
class EmbedderReport:
    """Retrieval and authenticity figures on held-out brands."""

    brands: int
    references: int
    authentic_queries: int
    counterfeit_queries: int
    top1: float
    counterfeit_top1: float
    auc: float
    auc_by_family: dict[str, float]
    verified_auc: dict[str, float] = field(default_factory=dict)  # with the verifier: "all" and per family
    verifier_auc: dict[str, float] = field(default_factory=dict)  # the verifier's score alone
    query_sizes: tuple[float, float] = MARK_SIZES  # size range of the query marks, pixels

    def to_dict(self) -> dict:
        out = {
            "gallery_brands": self.brands,
            "references": self.references,
            "authentic_queries": self.authentic_queries,
            "counterfeit_queries": self.counterfeit_queries,
            "brand_top1": round(self.top1, 4),
            "counterfeit_brand_top1": round(self.counterfeit_top1, 4),
            "counterfeit_auc": round(self.auc, 4),
            "counterfeit_auc_by_family": {k: round(v, 4) for k, v in self.auc_by_family.items()},
        }
        if self.verified_auc:
            out["verified_auc"] = {k: round(v, 4) for k, v in self.verified_auc.items()}
            out["verifier_alone_auc"] = {k: round(v, 4) for k, v in self.verifier_auc.items()}
        out["query_sizes"] = list(self.query_sizes)
        return out


SIZE_BUCKETS = {"under_32px": (0.0, 32.0), "32_to_64px": (32.0, 64.0), "over_64px": (64.0, 1e9)}


def detector_ap50(
    detector: Detector, frames: Sequence[np.ndarray], truths: Sequence[np.ndarray], batch: int = 8
) -> dict[str, float]:
    """Mark AP50 of ``detector`` over frames with their (M, 4) mark boxes: overall and by mark size."""
    preds = []
    for i in range(0, len(frames), batch):
        for det in detector.detect(list(frames[i : i + batch])):
            marks = det.of_class(MARK)
            preds.append((marks.boxes, marks.scores))
    out = {"all": average_precision(preds, truths, 0.5)}
    for name, size in SIZE_BUCKETS.items():
        out[name] = average_precision(preds, truths, 0.5, size_range=size)
    return out


def build_reference_set(
    embedder: Embedder,
    marks: Sequence[Mark],
    views: int,
    seed: int = 0,
    view_sizes: tuple[float, float] = DEFAULT_VIEW_SIZES,
) -> tuple[Embeddings, np.ndarray]:
    """Embed ``views`` references per brand from one gallery image each; (vectors, brand index)."""
    vecs, owners = [], []
    for b, mark in enumerate(marks):
        image = gallery_image(mark.mask, mark.colour)
        crops = reference_views(image, views, seed + b, embedder.crop_size, view_sizes)
        vecs.append(embedder.embed(crops))
        owners.append(np.full(len(crops), b))
    return Embeddings.concat(vecs), np.concatenate(owners)


def query_set(
    marks: Sequence[Mark],
    authentic: int,
    seed: int,
    size: int = CROP_SIZE,
    detail: int = 0,
    apparent: tuple[float, float] = MARK_SIZES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Authentic crops and one counterfeit per family for each brand, ``size`` pixels square, the
    marks ``apparent`` pixels in size.

    Returns crops, brand index, family index (-1 authentic) and, with ``detail``, the same
    renderings cut at ``detail`` pixels for the verifier (else None).
    """
    sizes = (size, detail) if detail else (size,)
    crops, details, brand, family = [], [], [], []

    def add(rendered: list[np.ndarray] | None, b: int, f: int) -> None:
        if rendered is not None:
            crops.append(rendered[0])
            details.extend(rendered[1:])
            brand.append(b)
            family.append(f)

    for b, mark in enumerate(marks):
        rng = np.random.default_rng([seed, b])
        for _ in range(authentic):
            add(render_mark_crops(rng, mark.mask, mark.colour, sizes, apparent=apparent), b, -1)
        for f, name in enumerate(FAMILIES):
            other = marks[int(rng.integers(len(marks)))].mask
            fake = make_counterfeit(mark.mask, name, rng, other=other)
            if fake is None:
                continue
            add(render_mark_crops(rng, fake, mark.colour, sizes, apparent=apparent), b, f)
    return np.stack(crops), np.asarray(brand), np.asarray(family), np.stack(details) if detail else None


def verifier_scores(
    details: np.ndarray,
    brand: np.ndarray,
    marks: Sequence[Mark],
    cfg: VerifierConfig,
    judge: OnnxJudge | None = None,
    batch: int = 256,
    hands: HandFinder | None = None,
) -> np.ndarray:
    """The verifier's score of each detail crop against its brand's gallery image: the verifier
    model's probability that it is authentic with ``judge``, else the fit's hand-made score.
    ``hands``: what it finds of a presenter's hand is left out, as ``MarkVerifier`` does."""
    if details.shape[1:3] != (cfg.side, cfg.side):
        raise ValueError(f"expected {cfg.side} px detail crops, got {details.shape[1]}")
    refs = [reference_mask(gallery_image(m.mask, m.colour), cfg.side) for m in marks]
    out = np.empty(len(details), np.float32)
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for i, (crop, b) in enumerate(zip(details, brand, strict=True)):
        hidden = hidden_part(hands, crop)
        inks = ink_candidates(crop, cfg.clusters, hidden)
        fit = fit_reference(inks, refs[int(b)], cfg, hidden)
        out[i] = fit.score(cfg.anisotropy_limit)
        if judge is not None:
            pending.append(judge_inputs(crop, inks, refs[int(b)], fit, cfg.anisotropy_limit, hidden))
        if judge is not None and (len(pending) == batch or i == len(details) - 1):
            start = i + 1 - len(pending)
            out[start : i + 1] = judge.judge_pairs(pending)[0]
            pending = []
    return out


def embedder_report(
    embedder: Embedder,
    marks: Sequence[Mark],
    views: int = 8,
    authentic: int = 3,
    seed: int = 1000,
    verifier: tuple[VerifierConfig, float, float] | None = None,
    view_sizes: tuple[float, float] = DEFAULT_VIEW_SIZES,
    judge: OnnxJudge | None = None,
    apparent: tuple[float, float] = MARK_SIZES,
    hands: HandFinder | None = None,
) -> EmbedderReport:
    """Brand top-1 retrieval (identity vectors) and counterfeit ROC-AUC (authenticity similarity to
    the nearest reference of the crop's brand).

    With ``verifier`` (its settings, the verdict's weight and target), the ROC-AUC is measured
    again on the similarity the verdict weighs: ``+ weight x (verifier score - target)``, the
    score from the verifier model ``judge`` where one is given. ``apparent`` is the size range
    of the query marks, pixels.
    """
    refs, owners = build_reference_set(embedder, marks, views, view_sizes=view_sizes)
    detail = verifier[0].side if verifier else 0
    crops, brand, family, details = query_set(marks, authentic, seed, embedder.crop_size, detail, apparent)
    q = embedder.embed(crops)
    top1_brand = owners[np.argmax(q.identity @ refs.identity.T, axis=1)]
    auth = family < 0
    sim = q.authenticity @ refs.authenticity.T
    own = np.where(owners[None, :] == brand[:, None], sim, -np.inf).max(axis=1)
    by_family = _auc_by_family(own, auth, family)
    verified: dict[str, float] = {}
    alone: dict[str, float] = {}
    if verifier is not None and details is not None:
        cfg, weight, target = verifier
        scores = verifier_scores(details, brand, marks, cfg, judge, hands=hands)
        blended = own + weight * (scores - target)
        verified = {"all": roc_auc(blended, auth), **_auc_by_family(blended, auth, family)}
        alone = {"all": roc_auc(scores, auth), **_auc_by_family(scores, auth, family)}
    return EmbedderReport(
        brands=len(marks),
        references=len(refs),
        authentic_queries=int(auth.sum()),
        counterfeit_queries=int((~auth).sum()),
        top1=float(np.mean(top1_brand[auth] == brand[auth])),
        counterfeit_top1=float(np.mean(top1_brand[~auth] == brand[~auth])) if (~auth).any() else float("nan"),
        auc=roc_auc(own, auth),
        auc_by_family=by_family,
        verified_auc=verified,
        verifier_auc=alone,
        query_sizes=apparent,
    )


def _auc_by_family(score: np.ndarray, auth: np.ndarray, family: np.ndarray) -> dict[str, float]:
    out = {}
    for f, name in enumerate(FAMILIES):
        sel = auth | (family == f)
        if (family == f).any():
            out[name] = roc_auc(score[sel], auth[sel])
    return out
