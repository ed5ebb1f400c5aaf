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


@pytest.mark.parametrize(("per_run", "frames"), [(1, 3), (2, 3), (0, 3), (4, 3), (1, 1), (1, 0)])
def test_frames_per_run_changes_nothing_but_speed(library, per_run, frames):
    rng = np.random.default_rng(5)
    images = [random_scene(rng, [(m.mask, m.colour) for m in library[k : k + 2]])[0] for k in range(frames)]
    with OnnxDetector(providers=["CPUExecutionProvider"], cpu_frames_per_run=0) as whole:
        expected = whole.detect(images)
    with OnnxDetector(providers=["CPUExecutionProvider"], cpu_frames_per_run=per_run) as det:
        assert det.frames_per_run == per_run
        got = det.detect(images)
    assert len(got) == len(expected) == frames
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


@pytest.mark.parametrize(("per_run", "pinned"), [(1, True), (2, False), (0, False)])
def test_pinned_session_only_for_frames_one_at_a_time(per_run, pinned):
    with OnnxDetector(providers=["CPUExecutionProvider"], cpu_frames_per_run=per_run) as det:
        assert (det.pinned is not None) == pinned


@pytest.mark.parametrize("frames", [0, 1, 3])
def test_pinned_session_finds_what_the_free_one_finds(library, frames):
    with OnnxDetector(providers=["CPUExecutionProvider"]) as det:
        assert det.pinned is not None and det.input_size is not None
        width, height = det.input_size
        rng = np.random.default_rng(3)
        # Frames of the network's size and larger (resized to it) take the pinned session.
        sizes = [(width, height), (width * 3 // 2, height * 3 // 2), (width, height)][:frames]
        images = [
            random_scene(rng, [(m.mask, m.colour) for m in library[2 * k : 2 * k + 2]], *s, 50, 160)[0]
            for k, s in enumerate(sizes)
        ]
        got = det.detect(images)
        pinned, det.pinned = det.pinned, None
        expected = det.detect(images)
        det.pinned = pinned
    assert len(got) == len(expected) == frames
    for a, b in zip(got, expected, strict=True):
        assert len(a.boxes) == len(b.boxes)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


def test_pinned_session_refuses_other_sizes():
    with OnnxDetector(providers=["CPUExecutionProvider"]) as det:
        assert det.pinned is not None
        with pytest.raises(Exception, match="dimensions"):
            det.pinned.run(np.zeros((1, 32, 32, 3), np.uint8))
        # ...so frames of another size go through the free session.
        assert det.detect([np.zeros((32, 32, 3), np.uint8)])[0].boxes.shape == (0, 4)
