"""Embedder crop sets: counterfeit families drawn only from those asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.synth.counterfeit import FAMILIES
from pipeline.synth.datasets import crop_set


@pytest.mark.parametrize(
    "families",
    [("stroke",), ("stroke", "stroke", "aspect"), ("erase", "extra", "warp"), FAMILIES],
)
def test_counterfeits_come_from_the_families_asked_for(library, families):
    data = crop_set(list(library)[:4], authentic=1, counterfeit=4, seed=3, families=families)
    fake = data["fake"]
    assert fake.any() and (~fake).any()
    assert (data["family"][~fake] == -1).all()
    drawn = {FAMILIES[i] for i in data["family"][fake]}
    assert drawn <= set(families)
    assert len(data["crops"]) == len(data["brand"]) == len(fake)


def test_all_families_by_default_keep_earlier_sets_reproducible(library):
    marks = list(library)[:3]
    a = crop_set(marks, authentic=1, counterfeit=3, seed=5)
    b = crop_set(marks, authentic=1, counterfeit=3, seed=5, families=FAMILIES)
    np.testing.assert_array_equal(a["crops"], b["crops"])
    np.testing.assert_array_equal(a["family"], b["family"])


@pytest.mark.parametrize("size", [32, 96])
def test_crop_size_renders_the_same_scenes(library, size):
    # The renderer draws the scene before cutting the crop: a larger crop set holds the same
    # marks, fakes and camera conditions, at more pixels.
    marks = list(library)[:3]
    base = crop_set(marks, authentic=1, counterfeit=2, seed=7)
    other = crop_set(marks, authentic=1, counterfeit=2, seed=7, size=size)
    assert other["crops"].shape[1:] == (size, size, 3)
    np.testing.assert_array_equal(base["family"], other["family"])
    np.testing.assert_array_equal(base["brand"], other["brand"])
    resized = np.stack([cv2.resize(c, (64, 64), interpolation=cv2.INTER_AREA) for c in other["crops"]])
    assert np.abs(resized.astype(int) - base["crops"]).mean() < 5  # another seed: about 75


@pytest.mark.parametrize("families", [(), ("bogus",), ("stroke", "Stroke")])
def test_unknown_families_are_refused(library, families):
    with pytest.raises(ValueError, match="unknown counterfeit families"):
        crop_set(list(library)[:2], authentic=1, counterfeit=1, seed=0, families=families)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "heldout", "--families", "stroke,bogus"], "unknown counterfeit families ['bogus']"),
        # The committed sample holds held-out brands only: its training split is empty.
        (["--split", "train"], "no marks of the train split"),
        (["--split", "heldout", "--crop-size", "8"], "--crop-size must be at least 16"),
    ],
)
def test_make_training_data_refuses_bad_input_in_one_line(tmp_path, args, message):
    root = Path(__file__).resolve().parents[2]
    script, marks = root / "scripts" / "make_training_data.py", root / "data" / "marks"
    out = tmp_path / "crops.npz"
    proc = subprocess.run(
        [sys.executable, str(script), "crops", "--marks", str(marks), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
