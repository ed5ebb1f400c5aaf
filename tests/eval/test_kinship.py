"""Fitting the kinship model: rows from a logged run, the logistic fit, cross-validation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.eval.kinship import KinshipRows, cross_validated, fit_logistic, kinship_rows, track_of
from pipeline.eval.scoring import LabelledObject
from pipeline.verdict import KINSHIP_FIGURES, kinship
from tests.eval.test_misses import BOX, clip, logged, mark


def labelled(brand="acme", family=None, first=0, last=180):
    frames = np.arange(first, last + 1)
    boxes = np.tile(np.array(BOX, np.float32), (len(frames), 1))
    return LabelledObject(1, brand, family is None, frames, boxes, family)


def checked(t, same_brand, sims=None):
    return mark(t, sims or {"acme": 0.8, "other": 0.3}, verified=dict.fromkeys(same_brand, 0.1), same_brand=same_brand)


@pytest.mark.parametrize(
    ("marks", "obj", "min_checks", "rows"),
    [
        pytest.param(
            [checked(t, {"acme": 0.9, "other": 0.2}) for t in (0.0, 0.5, 1.0)],
            labelled(family="warp"),
            3,
            [("acme", True, [0.8, 0.9, 0.7, 0.5]), ("other", False, [0.3, 0.2, -0.7, -0.5])],
            id="own-brand-and-a-neighbour",
        ),
        pytest.param([checked(t, {"acme": 0.9}) for t in (0.0, 0.5)], labelled(), 3, [], id="too-few-checks"),
        pytest.param([mark(t, {"acme": 0.8}) for t in (0.0, 0.5, 1.0)], labelled(), 1, [], id="never-verified"),
        pytest.param([], labelled(), 1, [], id="nothing-logged"),
        pytest.param(
            [checked(t, {"acme": 0.9}) for t in (0.0, 0.5, 1.0)],
            labelled(brand="zeta"),
            3,
            [("acme", False, [0.8, 0.9, 0.9, 0.5])],
            id="unenrolled-mark-checked-against-acme",
        ),
    ],
)
def test_kinship_rows(marks, obj, min_checks, rows):
    got = kinship_rows(logged(marks), [clip(obj)], group=2, min_checks=min_checks)
    assert len(got) == len(rows)
    assert got.figures.shape == (len(rows), len(KINSHIP_FIGURES))
    for k, (_brand, own, figures) in enumerate(rows):
        assert got.own[k] == own
        assert got.figures[k] == pytest.approx(figures)
        assert got.family[k] == (obj.family or "authentic")
    assert (got.group == 2).all()


@pytest.mark.parametrize(
    ("figures", "brand"),
    [
        pytest.param({"acme": 0.9}, "other", id="unchecked-brand"),
        pytest.param({}, "acme", id="never-checked"),
    ],
)
def test_no_figures_for_a_brand_never_checked(figures, brand):
    assert track_of([checked(0.0, figures)]).kinship_figures(brand) is None


def test_rows_check_their_shapes():
    with pytest.raises(ValueError, match=r"expected \(2, 4\) figures, got \(2, 3\)"):
        KinshipRows(np.zeros((2, 3)), np.zeros(2, bool), np.zeros(2, str), np.zeros(2, int))


def test_concat_of_nothing_is_empty():
    assert len(KinshipRows.concat([])) == 0


def separable(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return x, x @ np.array([2.0, -1.0]) + 0.5 + rng.normal(scale=0.5, size=n) > 0


def test_fit_logistic_finds_the_direction():
    x, y = separable()
    w = fit_logistic(x, y, l2=0.1)
    assert w.shape == (3,)
    assert w[0] > 0 > w[1]
    assert np.mean((kinship(x, w) >= 0.5) == y) > 0.9


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        pytest.param(np.zeros((3, 2)), np.ones(3, bool), "both kinds", id="one-class"),
        pytest.param(np.zeros((3, 2)), np.zeros(2, bool), r"\(N, F\) figures and \(N,\) labels", id="mismatched"),
        pytest.param(np.zeros(3), np.zeros(3, bool), r"\(N, F\) figures", id="one-dimensional"),
    ],
)
def test_fit_logistic_rejects(x, y, message):
    with pytest.raises(ValueError, match=message):
        fit_logistic(x, y)


def test_cross_validated_leaves_each_group_out():
    x, y = separable(300)
    x4 = np.hstack([x, np.zeros((len(x), 2))])
    rows = KinshipRows(x4, y, np.full(len(y), "authentic"), np.arange(len(y)) % 3)
    prob = cross_validated(rows)
    assert prob.shape == (len(y),)
    assert np.mean((prob >= 0.5) == y) > 0.85
    # Each group's probabilities come from a model that never saw it: not the in-sample fit's.
    assert not np.allclose(prob, kinship(x4, fit_logistic(x4, y)))
