"""The CPU detector's host-side downscale: the same marks as the graph's own resize."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.boxes import iou_matrix
from pipeline.infer.detector import OnnxDetector, network_input
from pipeline.synth.render import random_scene
from pipeline.types import MARK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("800x448", (800, 448)),
        ("64x64", (64, 64)),
        ("", None),
        ("800", None),
        ("0x448", None),
        ("wide x tall", None),
        ("800x448x3", None),
    ],
)
def test_network_input(text, expected):
    assert network_input(text) == expected


def test_shipped_detector_knows_its_input_size():
    with OnnxDetector(providers=["CPUExecutionProvider"]) as det:
        assert det.input_size is not None


@pytest.mark.parametrize("size", [(1280, 720), (960, 540)])
def test_host_resize_finds_what_the_graph_resize_finds(library, size):
    rng = np.random.default_rng(11)
    frames = [random_scene(rng, [(m.mask, m.colour) for m in library[k : k + 3]], *size, 50, 160)[0] for k in (0, 3)]
    with OnnxDetector(providers=["CPUExecutionProvider"]) as det:
        host = det.detect(frames)
        det.input_size = None  # the graph resizes the full frame itself
        graph = det.detect(frames)
    for a, b in zip(host, graph, strict=True):
        ma, mb = a.of_class(MARK), b.of_class(MARK)
        strong_a, strong_b = ma.scores >= 0.5, mb.scores >= 0.5
        assert strong_a.sum() == strong_b.sum() > 0
        ious = iou_matrix(ma.boxes[strong_a], mb.boxes[strong_b])
        assert (ious.max(axis=1) >= 0.9).all()
        np.testing.assert_allclose(np.sort(ma.scores[strong_a]), np.sort(mb.scores[strong_b]), atol=0.02)
        assert ma.boxes[:, 2].max() <= size[0] and ma.boxes[:, 3].max() <= size[1]
