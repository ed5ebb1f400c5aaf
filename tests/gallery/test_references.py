"""Reference crops of gallery images: the plain crop and its camera views."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.gallery.references import plain_reference, reference_views
from pipeline.synth.render import gallery_image


def _sharpness(crops: np.ndarray) -> float:
    """Mean variance of the Laplacian: fine detail left in the crops."""
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for c in crops]))


@pytest.fixture
def image(library):
    mark = library[3]
    return gallery_image(mark.mask, mark.colour)


@pytest.mark.parametrize("views", [1, 2, 12])
def test_plain_crop_first_then_camera_views(image, views):
    crops = reference_views(image, views, seed=5, size=64)
    assert crops.shape == (views, 64, 64, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[0], plain_reference(image, 64))
    np.testing.assert_array_equal(crops, reference_views(image, views, seed=5, size=64))


def test_view_sizes_set_how_much_detail_the_views_keep(image):
    # Views of a mark seen at 16-24 px are enlarged to the crop side and lose their detail;
    # views at 80-110 px (the size of most stream marks) keep it.
    small = reference_views(image, 13, seed=1, size=64, view_sizes=(16.0, 24.0))[1:]
    large = reference_views(image, 13, seed=1, size=64, view_sizes=(80.0, 110.0))[1:]
    assert _sharpness(large) > 2 * _sharpness(small)
