"""Embedder crop sets: counterfeit families drawn only from those asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.infer.verifier import VerifierConfig
from pipeline.synth.counterfeit import FAMILIES
from pipeline.synth.datasets import brand_neighbours, crop_set, pair_set
from pipeline.synth.render import Hands


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


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        pytest.param(crop_set, {"authentic": 1, "counterfeit": 3, "seed": 5}, id="crops"),
        pytest.param(pair_set, {"brands": 2, "authentic": 1, "seed": 6}, id="pairs"),
    ],
)
def test_all_families_by_default_keep_earlier_sets_reproducible(library, make, kwargs):
    marks = list(library)[:3]
    a = make(marks, **kwargs)
    b = make(marks, **kwargs, families=FAMILIES)
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


def make_training_data(kind: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/make_training_data.py KIND on the committed sample marks, writing ``out``."""
    root = Path(__file__).resolve().parents[2]
    script, marks = root / "scripts" / "make_training_data.py", root / "data" / "marks"
    command = [sys.executable, str(script), kind, "--marks", str(marks), "--out", str(out), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


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
    out = tmp_path / "crops.npz"
    proc = make_training_data("crops", out, *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_make_training_data_lays_out_halves_from_the_command_line(tmp_path):
    out = tmp_path / "pairs.npz"
    args = ["--split", "heldout", "--brands", "3", "--authentic", "1", "--families", "splice,splice", "--halves"]
    proc = make_training_data("pairs", out, *args)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as data:
        assert data["half"].dtype == bool and len(data["half"]) == len(data["crops"])
        assert data["half"].any() and not data["half"][0]


def test_pair_set_aligns_each_rendering_with_its_brand(library):
    marks = list(library)[:5]
    data = pair_set(marks, brands=3, authentic=2, seed=4)
    n = len(data["crops"])
    assert 3 * 2 <= n <= 3 * (2 + len(FAMILIES))
    assert data["crops"].shape == (n, 96, 96, 3) and data["crops"].dtype == np.uint8
    assert data["masks"].shape == (n, 96, 96, 2) and data["masks"].dtype == np.uint8
    assert data["fit"].shape == (n, 4) and data["fit"].dtype == np.float32
    assert data["hands"].shape == (n, 96, 96) and data["hands"].dtype == np.uint8
    assert set(data["brand"].tolist()) <= set(range(len(marks))) and len(set(data["brand"].tolist())) == 3
    assert (data["fake"] == (data["family"] >= 0)).all() and (~data["fake"]).sum() == 6
    # Authentic marks fit their reference better than counterfeits do (the median agreement).
    assert np.median(data["fit"][~data["fake"], 0]) > np.median(data["fit"][data["fake"], 0])
    # The aligned reference lies on the crop's ink: they overlap far more than chance.
    ink, ref = data["masks"][..., 0] > 127, data["masks"][..., 1] > 127
    real = ~data["fake"]
    overlap = (ink & ref)[real].sum() / max((ink | ref)[real].sum(), 1)
    assert overlap > 0.4
    again = pair_set(marks, brands=3, authentic=2, seed=4, workers=2)
    np.testing.assert_array_equal(again["crops"], data["crops"])


@pytest.mark.parametrize(("hands", "covered"), [(Hands(0.0), 0), (Hands(1.0, (0.2, 0.3)), 1)])
def test_pair_set_says_where_each_hand_lies(library, hands, covered):
    data = pair_set(list(library)[:3], brands=2, authentic=2, seed=4, hands=hands)
    with_hand = (data["hands"] > 127).any(axis=(1, 2))
    assert with_hand.mean() == covered


@pytest.mark.parametrize(
    ("families", "expected"),
    [
        pytest.param(("splice", "splice"), {"splice"}, id="one-family-twice"),
        pytest.param(("mirror", "aspect"), {"mirror", "aspect"}, id="two-families"),
        pytest.param((), set(), id="authentic-only"),
    ],
)
def test_pair_set_fakes_come_from_the_families_asked_for(library, families, expected):
    data = pair_set(list(library)[:4], brands=2, authentic=1, seed=4, families=families)
    drawn = [FAMILIES[i] for i in data["family"][data["fake"]]]
    assert set(drawn) <= expected
    assert len(drawn) <= 2 * len(families)


def test_pair_set_with_no_brands_is_refused(library):
    with pytest.raises(ValueError, match="no verifier pairs"):
        pair_set(list(library)[:2], brands=0, authentic=1, seed=0)


def test_pair_set_lays_neighbouring_brands_over_crops(library):
    marks = list(library)[:5]
    near = brand_neighbours(np.random.default_rng(0).normal(size=(len(marks), 8)).astype(np.float32), 2)
    own = pair_set(marks, brands=3, authentic=2, seed=4)
    data = pair_set(marks, brands=3, authentic=2, seed=4, neighbours=near, others=4)
    same, authentic = data["same"], data["authentic"]
    # the own-brand pairs are the very pairs made without others; the rest show another brand's mark
    np.testing.assert_array_equal(data["crops"][same], own["crops"])
    assert 0 < (~same).sum() <= 3 * 4
    assert (authentic == (same & (data["family"] < 0))).all()
    # a neighbour's mark lays over a crop worse than its own brand's does
    assert np.median(data["fit"][~same, 0]) < np.median(data["fit"][authentic, 0])


@pytest.mark.parametrize("families", [("splice", "splice", "splice"), ()], ids=["splices", "authentic-only"])
def test_pair_set_lays_out_halves_as_streams_do(library, families):
    # With halves a whole fit that agrees under halves_below is followed by its best half's pair;
    # without, the pairs are the very pairs made before (the whole fits, no half pairs).
    marks = list(library)[:5]
    plain = pair_set(marks, brands=3, authentic=2, seed=4, families=families)
    laid = pair_set(marks, brands=3, authentic=2, seed=4, families=families, halves=True)
    assert not plain["half"].any()
    half = laid["half"]
    whole = laid["crops"][~half]
    np.testing.assert_array_equal(whole, plain["crops"])  # the same renderings, in order
    below = VerifierConfig().halves_below
    idx = np.flatnonzero(half)
    assert not half[0] and (~half[idx - 1]).all()  # each half pair follows its rendering's whole pair
    np.testing.assert_array_equal(laid["crops"][idx], laid["crops"][idx - 1])
    assert (laid["family"][idx] == laid["family"][idx - 1]).all() and (laid["same"][idx] == laid["same"][idx - 1]).all()
    # Halves are laid out only where the plain whole fit agreed under halves_below, and a reseated
    # whole never agrees worse than the plain one.
    plain_agreement = plain["fit"][:, 0]
    whole_of = np.flatnonzero(~half)
    has_half = np.isin(whole_of + 1, idx)
    assert (plain_agreement[has_half] < below).all()
    assert (laid["fit"][~half, 0] >= plain_agreement - 1e-6).all()
    if families:
        assert has_half.any()  # a splice's whole fit is poor and its kept half is found


def test_pair_set_needs_neighbours_for_other_brand_pairs(library):
    with pytest.raises(ValueError, match="neighbours"):
        pair_set(list(library)[:3], brands=2, authentic=1, seed=0, others=2)


@pytest.mark.parametrize(
    ("identity", "k", "expected"),
    [
        pytest.param([[1, 0], [0.9, 0.1], [0, 1]], 1, [[1], [0], [1]], id="nearest"),
        pytest.param([[1, 0], [0.9, 0.1], [0, 1]], 5, [[1, 2], [0, 2], [1, 0]], id="k-capped-at-others"),
        pytest.param([[1, 0]], 3, np.zeros((1, 0)), id="one-brand"),
        pytest.param(np.zeros((0, 2)), 3, np.zeros((0, 0)), id="empty"),
    ],
)
def test_brand_neighbours(identity, k, expected):
    out = brand_neighbours(np.asarray(identity, np.float32), k)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.asarray(expected, np.int64).reshape(out.shape))
    assert out.shape == np.asarray(expected).shape


def test_brand_neighbours_refuses_a_flat_array():
    with pytest.raises(ValueError, match=r"\(M, D\)"):
        brand_neighbours(np.zeros(4, np.float32), 2)
