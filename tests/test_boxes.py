from __future__ import annotations

import numpy as np
import pytest

from pipeline.boxes import KEPT_HALVES, as_boxes, crop_regions, cut_crops, iou_matrix, kept_halves, nms, square_boxes


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([[0, 0, 10, 10]], [[0, 0, 10, 10]], 1.0),
        ([[0, 0, 10, 10]], [[5, 0, 15, 10]], 50 / 150),
        ([[0, 0, 10, 10]], [[10, 10, 20, 20]], 0.0),
        ([[0, 0, 0, 0]], [[0, 0, 0, 0]], 0.0),
    ],
)
def test_iou(a, b, expected):
    assert iou_matrix(np.array(a), np.array(b))[0, 0] == pytest.approx(expected)


def test_iou_empty():
    assert iou_matrix(np.zeros((0, 4)), np.ones((3, 4))).shape == (0, 3)


@pytest.mark.parametrize("bad", [np.zeros((3, 5)), np.zeros(4), np.zeros((2, 2, 4))])
def test_as_boxes_rejects_other_shapes(bad):
    with pytest.raises(ValueError, match=r"expected \(N, 4\) boxes"):
        as_boxes(bad)


@pytest.mark.parametrize(
    ("boxes", "scores", "keep"),
    [
        ([], [], []),
        ([[0, 0, 10, 10]], [0.5], [0]),
        ([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], [0.6, 0.9, 0.1], [1, 2]),
    ],
)
def test_nms(boxes, scores, keep):
    assert nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32)).tolist() == keep


def test_square_boxes_keep_centre_and_pad_longer_side():
    sq = square_boxes(np.array([[10, 20, 30, 60]]), pad=1.0)
    assert sq.tolist() == [[0.0, 20.0, 40.0, 60.0]]


@pytest.mark.parametrize(
    "boxes, expected",
    [
        (np.array([[10.2, 20.0, 30.6, 60.4]]), [[0.0, 20.0, 41.0, 60.0]]),  # rounded square, pad 1
        (np.zeros((0, 4)), []),
    ],
)
def test_crop_regions_are_whole_pixels(boxes, expected):
    regions = crop_regions(boxes, pad=1.0)
    assert regions.dtype == np.float32 and regions.shape == (len(boxes), 4)
    assert regions.tolist() == expected


@pytest.mark.parametrize("box", [[10, 10, 50, 30], [-20, -20, 15, 15], [90, 40, 130, 70]])
def test_cut_crops_shape_and_border(box):
    frame = np.zeros((80, 120, 3), np.uint8)
    frame[:, :, 0] = 200
    crops = cut_crops(frame, np.array([box], np.float32), size=32)
    assert crops.shape == (1, 32, 32, 3) and crops.dtype == np.uint8
    # Outside the frame the border is replicated, never black.
    assert (crops[..., 0] == 200).all()


# Each kept half of an 8 px crop: the rows and columns kept as they were.
@pytest.mark.parametrize(
    "half, rows, cols",
    [
        ("left", slice(None), slice(0, 4)),
        ("right", slice(None), slice(4, 8)),
        ("top", slice(0, 4), slice(None)),
        ("bottom", slice(4, 8), slice(None)),
    ],
)
def test_kept_halves_keep_one_half_and_fill_the_other_with_the_border(half, rows, cols):
    crop = np.full((1, 8, 8, 3), 240, np.uint8)  # a light background...
    crop[0, 2:6, 2:6] = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)  # ...and a mark in the middle
    out = kept_halves(crop)
    assert out.shape == (1, len(KEPT_HALVES), 8, 8, 3) and out.dtype == np.uint8
    kept = out[0, KEPT_HALVES.index(half)]
    assert (kept[rows, cols] == crop[0][rows, cols]).all()
    blank = np.ones((8, 8), bool)
    blank[rows, cols] = False
    assert (kept[blank] == 240).all()


def test_kept_halves_of_no_crops():
    assert kept_halves(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 4, 64, 64, 3)


@pytest.mark.parametrize(
    "crops", [np.zeros((2, 64, 32, 3), np.uint8), np.zeros((64, 64, 3), np.uint8), np.zeros((1, 8, 8, 3))]
)
def test_kept_halves_name_bad_crops(crops):
    with pytest.raises(ValueError, match=r"expected \(N, S, S, 3\) uint8 crops"):
        kept_halves(crops)
