"""The evaluation report renders in a real browser (headless Chromium), pictures included."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from pipeline.alerts import Alert, JsonlSink
from pipeline.eval.cli import main as evaluate_main
from pipeline.synth.clips import plan_scripted_clip, render_clip, write_gallery

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, library):
    root = tmp_path_factory.mktemp("report")
    marks = list(library)
    write_gallery(marks[:10], root / "gallery")
    spec = plan_scripted_clip(
        "shop",
        np.random.default_rng(0),
        [(marks[2], "mirror"), (marks[4], "aspect")],
        marks[:10],
        seconds=4,
        size=(320, 180),
        min_mark=50,
        max_mark=60,
    )
    render_clip(spec, root / "clips")
    labels = json.loads((root / "clips" / "shop.json").read_text())
    first = labels["objects"][0]
    f, x1, y1, x2, y2 = first["boxes"][len(first["boxes"]) // 2]
    with JsonlSink(root / "alerts.jsonl") as sink:
        # One alert that catches the first counterfeit, one false alert on a wrong brand.
        sink.write(Alert(stream="shop", t=f / 30, frame=f, brand=first["brand"], box=(x1, y1, x2, y2), score=0.9))
        sink.write(Alert(stream="shop", t=1.0, frame=30, brand=marks[7].slug, box=(10, 10, 60, 60), score=0.6))
    code = evaluate_main(
        [
            "--clips",
            str(root / "clips"),
            "--alerts",
            str(root / "alerts.jsonl"),
            "--gallery",
            str(root / "gallery"),
            "--out",
            str(root / "out"),
        ]
    )
    assert code == 0
    return root / "out"


def test_outputs(evaluated):
    metrics = json.loads((evaluated / "metrics.json").read_text())
    assert metrics["event_recall"] == 0.5 and metrics["alert_precision"] == 0.5
    assert metrics["counts"]["false_alerts"] == 1
    # one clip: every resample is that clip, so the interval is the point figure
    assert metrics["intervals_95"]["event_recall"] == [0.5, 0.5]
    rows = (evaluated / "clips.csv").read_text().splitlines()
    assert rows[0].startswith("clip,") and rows[1].startswith("shop,")
    assert (evaluated / "pr_curve.png").stat().st_size > 1000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
def test_report_renders_in_chromium(evaluated, tmp_path):
    report = evaluated / "report.html"
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "event recall" in dom and "0.5" in dom
    shown = re.search(r'data-images-shown="(\d+)"', dom)
    total = re.search(r'data-images="(\d+)"', dom)
    assert shown and total, "the page's load handler did not run"
    # The curve, one missed counterfeit and one false alert: all decoded by the browser.
    assert int(total.group(1)) == 3
    assert int(shown.group(1)) == 3
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_calibrate_writes_thresholds_replay_reads(evaluated, tmp_path):
    import yaml

    from pipeline.config import Config

    root = evaluated.parent
    calib = tmp_path / "calibration.yaml"
    code = evaluate_main(
        [
            "--clips",
            str(root / "clips"),
            "--alerts",
            str(root / "alerts.jsonl"),
            "--out",
            str(tmp_path / "o"),
            "--calibrate",
            "--target-precision",
            "0.95",
            "--calibration-out",
            str(calib),
            "--no-report",
        ]
    )
    assert code == 0
    chosen = yaml.safe_load(calib.read_text())["verdict"]
    # Only the true alert (score 0.9) survives a threshold that reaches 95% precision.
    assert chosen["alert_threshold"] == pytest.approx(0.9)
    config = tmp_path / "fakewatch.yaml"
    config.write_text("calibration: calibration.yaml\n")
    assert Config.load(config).verdict.alert_threshold == pytest.approx(0.9)


@pytest.mark.parametrize("bad", ["{not json", '{"format": "fakewatch-labels/7"}'])
def test_malformed_labels_exit_cleanly(tmp_path, capsys, bad):
    (tmp_path / "c.json").write_text(bad)
    assert (
        evaluate_main(["--clips", str(tmp_path), "--alerts", str(tmp_path / "a.jsonl"), "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert "c.json" in err and "Traceback" not in err


def test_a_pipeline_run_says_why_each_fake_was_missed(tmp_path):
    import html as html_lib
    from pathlib import Path

    from pipeline.eval.misses import CAUSE_TEXT

    demo = Path(__file__).resolve().parents[2] / "demo"
    out = tmp_path / "out"
    args = ["--clips", str(demo / "clips"), "--gallery", str(demo / "gallery"), "--out", str(out), "--sample", "2"]
    assert evaluate_main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    counts = metrics["counts"]
    by_cause = metrics["misses_by_cause"]
    assert sum(by_cause["all"].values()) == counts["counterfeits"] - counts["caught"]
    assert sum(n for fam, row in by_cause.items() if fam != "all" for n in row.values()) == sum(
        by_cause["all"].values()
    )
    page = (out / "report.html").read_text()
    assert 'id="miss-causes"' in page
    for cause, n in by_cause["all"].items():
        if n:
            assert html_lib.escape(CAUSE_TEXT[cause]) in page
