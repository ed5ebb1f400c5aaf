"""Evidence pictures: the panels a reviewer sees."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.alerts import evidence_image

CROP = np.full((64, 64, 3), 90, np.uint8)
REF = np.full((100, 200, 3), 250, np.uint8)
ALIGNED = np.full((128, 128, 3), 30, np.uint8)


@pytest.mark.parametrize(
    ("reference", "aligned", "width"),
    [
        (REF, None, 2 * 256 + 4),  # crop | reference
        (None, None, 2 * 256 + 4),  # the reference image is gone: a grey panel says so
        (REF, ALIGNED, 3 * 256 + 8),  # verifier mode: crop | reference | reference aligned onto the mark
    ],
)
def test_evidence_panels(reference, aligned, width):
    img = evidence_image(CROP, reference, "acme", 0.8, 0.4, "s t=1.0s", aligned)
    assert img.shape == (54 + 256, width, 3) and img.dtype == np.uint8
    if aligned is not None:
        assert (img[54:, -256:] == 30).all()
