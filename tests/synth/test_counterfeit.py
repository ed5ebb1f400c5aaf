from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth.counterfeit import FAMILIES, MIN_DEVIATION, make_counterfeit, shape_deviation


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


def test_identical_shapes_do_not_deviate(library):
    assert shape_deviation(library[0].mask, library[0].mask) == pytest.approx(0.0)


def test_unknown_family(library):
    with pytest.raises(ValueError, match="unknown counterfeit family"):
        make_counterfeit(library[0].mask, "recolour", np.random.default_rng(0))
