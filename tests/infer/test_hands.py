"""The shipped hand net on rendered marks of every split, with and without a presenter's hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.infer.hands import HANDS_SIDE, OnnxHands, hidden_part, widen
from pipeline.infer.models import MODELS_DIR
from pipeline.synth.marks import MarkLibrary
from pipeline.synth.render import Hands, render_mark_views


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    with OnnxHands(MODELS_DIR / "hands.onnx") as n:
        yield n


def views(library: MarkLibrary, hands: Hands, side: int) -> tuple[np.ndarray, np.ndarray]:
    crops, masks = [], []
    for seed, mark in enumerate(list(library)[:8]):
        v = render_mark_views(np.random.default_rng(seed), mark.mask, mark.colour, (side,), hands=hands)
        if v is not None:
            crops.append(v.crops[0])
            masks.append(v.hands[0] > 127)
    return np.stack(crops), np.stack(masks)


@pytest.mark.parametrize("side", [HANDS_SIDE, 128])
def test_the_shipped_hand_net_finds_hands(net: OnnxHands, library: MarkLibrary, side: int) -> None:
    crops, truth = views(library, Hands(1.0, (0.15, 0.3)), side)
    found = net.find(crops)
    assert found.shape == truth.shape and found.dtype == bool
    iou = (found & truth).sum() / (found | truth).sum()
    assert iou > 0.6


def test_the_shipped_hand_net_finds_little_where_there_is_none(net: OnnxHands, library: MarkLibrary) -> None:
    crops, truth = views(library, Hands(0.0), 128)
    assert not truth.any()
    assert net.find(crops).mean() < 0.02


def test_no_crops(net: OnnxHands) -> None:
    assert net.find(np.zeros((0, 96, 96, 3), np.uint8)).shape == (0, 96, 96)


@pytest.mark.parametrize(
    "crops",
    [np.zeros((2, 96, 80, 3), np.uint8), np.zeros((2, 96, 96), np.uint8), np.zeros((2, 96, 96, 3), np.float32)],
)
def test_bad_crops_are_named(net: OnnxHands, crops: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"expected \(N, S, S, 3\) uint8 crops"):
        net.find(crops)


def test_another_model_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a hand model"):
        OnnxHands(MODELS_DIR / "embedder.onnx")


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.5])
def test_threshold_must_be_a_probability(threshold: float) -> None:
    with pytest.raises(ValueError, match="hand threshold"):
        OnnxHands(MODELS_DIR / "hands.onnx", threshold=threshold)


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [(0, 1), (1, 9), (2, 25)],
)
def test_widen(pixels: int, expected: int) -> None:
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    assert widen(mask, pixels).sum() == expected
    assert not widen(np.zeros((9, 9), bool), pixels).any()


class Fixed:
    """A hand finder that always finds ``mask`` (the issue names no real one for this rule)."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def find(self, crops: np.ndarray) -> np.ndarray:
        return np.repeat(self.mask[None], len(crops), axis=0)


@pytest.mark.parametrize(
    ("finder", "expected"),
    [
        (None, None),  # no hand net: every pixel counts
        (Fixed(np.zeros((8, 8), bool)), None),  # no hand found: the same
        (Fixed(np.eye(8, dtype=bool)), np.eye(8, dtype=bool)),
    ],
)
def test_hidden_part(finder: Fixed | None, expected: np.ndarray | None) -> None:
    got = hidden_part(finder, np.zeros((8, 8, 3), np.uint8))
    assert (got is None) if expected is None else np.array_equal(got, expected)
