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


@pytest.mark.parametrize(("updates", "most"), [(0, 0), (1, 2), (500, 3)])
def test_progress_without_a_terminal_writes_a_few_lines_not_one_per_step(capsys, updates, most):
    from pipeline.cli import Progress

    bar = Progress("embedding gallery images", eager=False)
    for n in range(1, updates + 1):
        bar.update(n, updates)
    bar.close()
    err = capsys.readouterr().err
    assert err.count("embedding gallery images") <= most  # at start, every 5 s, and at the end
    assert (f"{updates}/{updates}" in err) == (updates > 0)


@pytest.mark.parametrize("streams", [1, 3])
def test_progress_without_a_terminal_writes_plain_lines_for_every_file(capsys, streams):
    from pipeline.cli import Progress

    bars = [Progress(f"clip_{k}", 12.0, position=k, unit="s") for k in range(streams)]
    for done in (0.5, 6.0, 12.0):
        for bar in bars:
            bar.update(done)
    for bar in bars:
        bar.close()
    err = capsys.readouterr().err
    # A log keeps cursor movements as escape codes: several bars redrawn in place would garble it.
    assert "\x1b" not in err and "\r" not in err
    for k in range(streams):
        lines = [line for line in err.splitlines() if line.startswith(f"clip_{k}:")]
        assert lines[0] == f"clip_{k}: 0.5/12 s (4%)"
        assert lines[-1].startswith(f"clip_{k}: ended at 12/12 s after ")
