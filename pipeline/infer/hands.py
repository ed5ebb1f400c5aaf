"""Finding a presenter's hand over a mark, so the verifier judges only what the hand leaves visible.

Sellers hold products up to the camera: a hand over a quarter of an authentic mark, frame after
frame, read as a part erased and raised false alerts (session 15). The hand net
(``models/hands.onnx``, ``models.training.verifier.HandNet``) marks the pixels a hand covers;
the verifier then leaves them out of the ink it aligns the brand's mark to and out of what its
model compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

import cv2
import numpy as np

from pipeline.infer.session import DEFAULT_PROVIDERS, OnnxSession

HANDS_SIDE = 96  # pixels of the crop the hand net reads
# Pixels the found hand is widened by at the net's side: its edge blurs into the mark.
WIDEN = 1


class HandFinder(Protocol):
    """Maps (N, S, S, 3) uint8 crops to (N, S, S) bool masks: True where a hand covers the crop."""

    def find(self, crops: np.ndarray) -> np.ndarray: ...


def hidden_part(finder: HandFinder | None, crop: np.ndarray) -> np.ndarray | None:
    """Where a presenter's hand covers one (S, S, 3) crop, as (S, S) bool; None without a finder
    or where it finds no hand (the verifier's functions then count every pixel, as before)."""
    if finder is None:
        return None
    found = finder.find(crop[None])[0]
    return found if found.any() else None


def widen(mask: np.ndarray, pixels: int) -> np.ndarray:
    """An (H, W) bool mask grown by ``pixels`` in every direction."""
    if pixels <= 0 or not mask.any():
        return mask
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


class OnnxHands:
    """The hand net: crops of any square size in, where a hand covers each, at that size, out.

    Use as a context manager, or call ``close``.
    """

    def __init__(
        self, path: str | Path, providers: Sequence[str] | None = None, threads: int = 0, threshold: float = 0.5
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"hand threshold: expected a probability in (0, 1), got {threshold}")
        self.session = OnnxSession(path, providers or DEFAULT_PROVIDERS, threads)
        if self.session.input_names != ["crops"] or self.session.output_names != ["hands"]:
            got = f"inputs {self.session.input_names}, outputs {self.session.output_names}"
            raise ValueError(f"{path}: expected a hand model (input crops, output hands); got {got}")
        self.threshold = threshold

    @property
    def version(self) -> str:
        return self.session.info.version if self.session.info else "unverified"

    def find(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 crops -> (N, S, S) bool: where a presenter's hand covers each."""
        if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2] or crops.dtype != np.uint8:
            raise ValueError(f"hand net: expected (N, S, S, 3) uint8 crops, got {crops.shape} {crops.dtype}")
        n, side = crops.shape[0], crops.shape[1]
        if n == 0:
            return np.zeros((0, side, side), bool)
        size = (HANDS_SIDE, HANDS_SIDE)
        small = crops
        if side != HANDS_SIDE:
            small = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in crops])
        prob = np.asarray(self.session.run(np.ascontiguousarray(small))[0], np.float32).reshape(n, *size)
        found = [widen(p > self.threshold, WIDEN) for p in prob]
        if side != HANDS_SIDE:
            found = [cv2.resize(f.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST) > 0 for f in found]
        return np.stack(found)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> OnnxHands:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
