"""`fakewatch gallery build/add/remove/stats` with the shipped embedder."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.config import Config
from pipeline.synth.clips import write_gallery


@pytest.fixture
def galleries(tmp_path, library):
    marks = list(library)
    return write_gallery(marks[:4], tmp_path / "gallery"), write_gallery(marks[4:5], tmp_path / "more"), marks


def test_build_stats_add_remove(tmp_path, galleries, capsys):
    gallery, more, marks = galleries
    index = tmp_path / "index"
    assert main(["gallery", "build", str(gallery), "--out", str(index)]) == 0
    assert "built" in capsys.readouterr().out
    assert main(["gallery", "stats", str(index), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["brands"] == 4 and stats["images"] == 4 and stats["kind"] == "exact"
    assert stats["view_sizes"] == list(Config.load().gallery.view_sizes)
    assert main(["gallery", "add", str(index), str(more / marks[4].slug)]) == 0
    assert main(["gallery", "remove", str(index), marks[0].slug]) == 0
    capsys.readouterr()
    assert main(["gallery", "stats", str(index), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert sorted(stats["per_brand"]) == sorted(m.slug for m in marks[1:5])


def test_stats_show_titles_and_authorized_sellers(tmp_path, galleries, capsys):
    gallery, _, marks = galleries
    (gallery / marks[0].slug / "brand.json").write_text('{"title": "Acme", "authorized_sellers": ["s-2", "s-1"]}')
    index = tmp_path / "index"
    assert main(["gallery", "build", str(gallery), "--out", str(index)]) == 0
    capsys.readouterr()
    assert main(["gallery", "stats", str(index)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines[marks[0].slug].endswith("(Acme)  authorized sellers: s-1, s-2")
    assert "authorized" not in lines[marks[1].slug]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gallery", "build", "/no/such/gallery", "--out", "X"], "gallery folder not found"),
        (["gallery", "stats", "/no/such/index"], "not a gallery index"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, capsys, args, message):
    args = [a.replace("X", str(tmp_path / "out")) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    # No progress bar starts for work that fails before it begins.
    assert len(err.strip().splitlines()) == 1, err


def test_bad_gallery_layout_is_one_line(tmp_path, capsys):
    bad = tmp_path / "gallery" / "Not_A_Brand_Id"
    bad.mkdir(parents=True)
    cv2.imwrite(str(bad / "ref_0.png"), np.full((32, 32, 3), 255, np.uint8))
    assert main(["gallery", "build", str(tmp_path / "gallery"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"fakewatch: error: {bad}: brand folder names must match [a-z0-9_-]+"]


def test_output_into_a_closed_pipe_is_no_traceback(tmp_path, galleries):
    # `fakewatch gallery stats INDEX | head -1`: the reader leaves before the writer is done.
    import subprocess
    import sys

    gallery, _, _ = galleries
    assert main(["gallery", "build", str(gallery), "--out", str(tmp_path / "index")]) == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "gallery", "stats", str(tmp_path / "index")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the first line is written: the process is still importing
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err
