"""The scripts' command lines: a user's mistake is one usage error line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scripts/make_clips.py", "--marks", "data/marks", "--out", "{tmp}", "--size", "12x"], "--size: expected"),
        (["scripts/make_clips.py", "--marks", "data/marks", "--out", "{tmp}", "--size", "32x32"], "at least 64x64"),
        (["scripts/make_clips.py", "--marks", "{tmp}/nope", "--out", "{tmp}"], "marks folder not found"),
        (["scripts/validate_models.py", "--marks", "{tmp}/nope"], "marks folder not found"),
        (["scripts/tune_verdict.py", "--clips", "{tmp}/nope", "--gallery", "demo/gallery"], "clips folder not found"),
        (["scripts/plot_warps.py", "--marks", "{tmp}/nope", "--out", "{tmp}/w.png"], "marks folder not found"),
    ],
)
def test_mistakes_are_one_line(tmp_path, args, message):
    done = _run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_make_demo_help_does_not_regenerate(tmp_path):
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "demo" / "clips").iterdir()}
    done = _run("scripts/make_demo.py", "--help")
    assert done.returncode == 0 and "usage:" in done.stdout
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "demo" / "clips").iterdir()} == before


def test_plot_warps_draws_three_rows(tmp_path):
    import cv2

    out = tmp_path / "warps.png"
    done = _run("scripts/plot_warps.py", "--marks", "data/marks", "--out", str(out), "--count", "3")
    assert done.returncode == 0, done.stderr
    image = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert image is not None and image.shape[0] == 3 * 130 and image.shape[1] == 120 + 3 * 112
