"""The small frozen records that pass between stages; each checks its own shapes and dtypes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MARK = 0
PRODUCT = 1


def _check(name: str, arr: np.ndarray, shape: tuple[int | None, ...], dtype: type) -> None:
    if arr.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype)}, got {arr.dtype}")
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected {want}, got {arr.shape}")


@dataclass(frozen=True)
class Frame:
    """One decoded video frame.

    Attributes:
        stream: stream id.
        index: presentation index of the frame in the source (0-based).
        t: media time in seconds from the start of the stream.
        image: (H, W, 3) uint8 RGB pixels.
    """

    stream: str
    index: int
    t: float
    image: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        _check("Frame.image", self.image, (None, None, 3), np.uint8)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True)
class Detections:
    """Detector output for one frame: boxes in source pixels, scores and classes."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.boxes)
        _check("Detections.boxes", self.boxes, (n, 4), np.float32)
        _check("Detections.scores", self.scores, (n,), np.float32)
        _check("Detections.classes", self.classes, (n,), np.int64)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.boxes)

    def of_class(self, category: int) -> Detections:
        """Only the detections of one class."""
        keep = self.classes == category
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])
