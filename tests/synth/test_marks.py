from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth.marks import HOLDOUT_FRACTION, Mark, MarkLibrary, hex_to_rgb, is_held_out
from tests.conftest import SAMPLE_MARKS


def test_sample_marks_are_all_held_out(library):
    assert len(library) >= 40
    assert all(is_held_out(s) for s in library.slugs)


def test_split_is_stable_and_near_fraction():
    slugs = [f"brand{i}" for i in range(4000)]
    held = [s for s in slugs if is_held_out(s)]
    assert abs(len(held) / len(slugs) - HOLDOUT_FRACTION) < 0.03
    assert held == [s for s in slugs if is_held_out(s)]


def test_library_split_partitions(library):
    train, held = library.split()
    assert len(train) + len(held) == len(library)
    assert not set(train.slugs) & set(held.slugs)


@pytest.mark.parametrize(("hex_colour", "rgb"), [("512BD4", (81, 43, 212)), ("#000000", (0, 0, 0)), ("", (0, 0, 0))])
def test_hex_to_rgb(hex_colour, rgb):
    assert hex_to_rgb(hex_colour) == rgb


def test_mark_checks_mask():
    with pytest.raises(ValueError, match="2-D uint8"):
        Mark("x", "X", (0, 0, 0), np.zeros((4, 4, 3), np.uint8))


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        MarkLibrary.from_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no usable"):
        MarkLibrary.from_folder(tmp_path)


def test_only_requested_slugs():
    lib = MarkLibrary.from_folder(SAMPLE_MARKS, slugs=["stripe", "sqlite"])
    assert lib.slugs == ["sqlite", "stripe"]
