from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.synth.counterfeit import (
    FAMILIES,
    MAX_BEND_SLOPE,
    MIN_DEVIATION,
    bend_field,
    elastic_warp,
    fold_factor,
    make_counterfeit,
    shape_deviation,
    turned,
    turned_deviation,
)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_deviates(library, family):
    rng = np.random.default_rng(3)
    made = 0
    for mark in library[:12]:
        fake = make_counterfeit(mark.mask, family, rng, other=library[-1].mask)
        if fake is None:
            continue
        made += 1
        assert fake.dtype == np.uint8 and fake.ndim == 2
        assert shape_deviation(mark.mask, fake) >= MIN_DEVIATION
    assert made >= 8


def test_symmetric_mark_is_not_faked_by_mirroring():
    disc = np.zeros((64, 64), np.uint8)
    yy, xx = np.mgrid[:64, :64]
    disc[(yy - 31.5) ** 2 + (xx - 31.5) ** 2 < 30**2] = 255
    assert make_counterfeit(disc, "mirror", np.random.default_rng(0)) is None


def test_mirror_of_a_turned_symmetric_mark_is_not_a_fake():
    # A bar-like ellipse turned by 10 degrees: its mirror image (left-right or top-bottom) deviates
    # from it, so the plain check passes, but it is the ellipse turned the other way: what a camera
    # shows of the authentic mark held at an angle.
    ellipse = np.zeros((100, 100), np.uint8)
    cv2.ellipse(ellipse, (50, 50), (40, 14), 0, 0, 360, 255, -1)
    tilted = turned(ellipse, 10.0)
    for flipped in (tilted[:, ::-1], tilted[::-1]):
        assert shape_deviation(tilted, np.ascontiguousarray(flipped)) >= MIN_DEVIATION
        assert turned_deviation(tilted, np.ascontiguousarray(flipped)) < MIN_DEVIATION
    assert make_counterfeit(tilted, "mirror", np.random.default_rng(0)) is None


@pytest.mark.parametrize(
    ("angle", "flip", "deviates"),
    [(0.0, False, False), (20.0, False, False), (-28.0, False, False), (0.0, True, True), (90.0, False, True)],
)
def test_turned_deviation(angle, flip, deviates):
    # An "L": no mirror symmetry; a turn within 30 degrees is explained, a mirror or a quarter turn is not.
    ell = np.zeros((80, 60), np.uint8)
    ell[:, :18] = 255
    ell[62:, :] = 255
    other = turned(ell, angle)
    if flip:
        other = np.ascontiguousarray(other[:, ::-1])
    assert (turned_deviation(ell, other) >= MIN_DEVIATION) == deviates


def test_turned_keeps_every_pixel_and_handles_an_empty_mask():
    ell = np.full((10, 40), 255, np.uint8)
    assert turned(ell, 90.0).shape[0] >= 39  # the long side now runs vertically, nothing cut off
    empty = np.zeros((8, 8), np.uint8)
    assert not turned(empty, 10.0).any()


def test_identical_shapes_do_not_deviate(library):
    assert shape_deviation(library[0].mask, library[0].mask) == pytest.approx(0.0)


def test_unknown_family(library):
    with pytest.raises(ValueError, match="unknown counterfeit family"):
        make_counterfeit(library[0].mask, "recolour", np.random.default_rng(0))


@pytest.mark.parametrize("shape", [(40, 40), (120, 300), (301, 97)])
def test_a_bend_never_folds_the_mark(shape):
    for seed in range(40):
        dx, dy = bend_field(shape, np.random.default_rng(seed))
        assert dx.shape == dy.shape == shape
        assert fold_factor(dx, dy).min() >= 1 - 2 * MAX_BEND_SLOPE - 1e-4
        # Still a visible bend: displaced by a few percent of the mark on average.
        assert 0.005 * max(shape) < np.hypot(dx, dy).mean() < 0.2 * max(shape)


@pytest.mark.parametrize(
    ("dx", "dy", "folds"),
    [
        (np.zeros((9, 9)), np.zeros((9, 9)), False),
        (np.tile(np.arange(9.0) * 0.5, (9, 1)), np.zeros((9, 9)), False),  # stretched 1.5x
        (np.tile(np.arange(9.0) * -1.5, (9, 1)), np.zeros((9, 9)), True),  # turned inside out
    ],
)
def test_fold_factor(dx, dy, folds):
    assert (fold_factor(dx, dy).min() < 0) == folds


def test_a_bent_ring_stays_one_piece_with_one_hole():
    # Folding tears a ring or closes its hole (3 of these 40 did before warps were bounded).
    ring = np.zeros((100, 100), np.uint8)
    cv2.circle(ring, (50, 50), 42, 255, 10)
    for seed in range(40):
        bent = elastic_warp(ring, np.random.default_rng(seed))
        ink = (bent > 127).astype(np.uint8)
        assert cv2.connectedComponents(ink)[0] - 1 == 1
        assert cv2.connectedComponents(1 - np.pad(ink, 1))[0] - 1 == 2  # the outside and the hole
