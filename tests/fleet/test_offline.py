"""Recorded clips through Ray give the same alerts and figures as on one machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.alerts import read_alerts
from pipeline.cli import main as fakewatch
from pipeline.eval.cli import main as evaluate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
CLIPS = sorted((DEMO / "clips").glob("*.mp4"))


def _key(a) -> tuple:  # type: ignore[no-untyped-def]
    return (a.id, a.stream, a.frame, a.brand, a.box, a.score, a.track, a.seller, a.authorized_seller)


def test_replay_with_ray_gives_the_same_alerts(ray_cluster, tmp_path):
    args = [*map(str, CLIPS), "--gallery", str(DEMO / "gallery"), "--sample", "2", "--seller", "reseller-9"]
    assert fakewatch(["replay", *args, "--alerts", str(tmp_path / "one.jsonl")]) == 0
    assert fakewatch(["replay", *args, "--alerts", str(tmp_path / "ray.jsonl"), "--ray"]) == 0
    one = sorted(map(_key, read_alerts(tmp_path / "one.jsonl")))
    on_ray = sorted(map(_key, read_alerts(tmp_path / "ray.jsonl")))
    assert one, "the demo clips call for alerts"
    assert on_ray == one
    assert {(k[-2], k[-1]) for k in on_ray} == {("reseller-9", False)}  # the actors knew the seller
    # Evidence was written for every alert by the actors.
    assert all(Path(a.evidence).is_file() for a in read_alerts(tmp_path / "ray.jsonl"))


def test_evaluate_with_ray_gives_the_same_figures(ray_cluster, tmp_path):
    common = ["--clips", str(DEMO / "clips"), "--gallery", str(DEMO / "gallery"), "--no-report", "--sample", "2"]
    assert evaluate([*common, "--out", str(tmp_path / "one")]) == 0
    assert evaluate([*common, "--out", str(tmp_path / "ray"), "--ray"]) == 0
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    on_ray = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    for m in (one, on_ray):
        m.pop("seconds")
    assert on_ray == one


def test_a_missing_file_fails_alone_on_ray(ray_cluster, tmp_path):
    out = tmp_path / "a.jsonl"
    code = fakewatch(
        [
            "replay",
            str(CLIPS[0]),
            str(tmp_path / "nope.mp4"),
            "--gallery",
            str(DEMO / "gallery"),
            "--alerts",
            str(out),
            "--ray",
        ]
    )
    assert code == 1
