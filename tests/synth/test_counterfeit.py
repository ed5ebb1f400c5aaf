from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.synth.counterfeit import (
    FAMILIES,
    MIN_DEVIATION,
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
