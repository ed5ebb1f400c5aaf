"""Which brands a gallery enrols, as the evaluation reads it (folder or built index)."""

from __future__ import annotations

import pytest

from pipeline.cli import UserError
from pipeline.eval.cli import enrolled_brands


@pytest.mark.parametrize(
    ("folders", "expected"),
    [
        pytest.param([], set(), id="empty"),
        pytest.param(["acme", "puma"], {"acme", "puma"}, id="one-per-sub-folder"),
        pytest.param(["acme", ".cache"], {"acme"}, id="hidden-folders-are-not-brands"),
    ],
)
def test_gallery_folder(tmp_path, folders, expected):
    for name in folders:
        (tmp_path / name).mkdir()
    (tmp_path / "notes.txt").write_text("not a brand")
    assert enrolled_brands(tmp_path) == expected


def test_missing_gallery_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="gallery not found"):
        enrolled_brands(tmp_path / "nowhere")


def test_built_index(tmp_path, library):
    from pipeline.gallery.index import GalleryIndex
    from pipeline.synth.clips import write_gallery
    from tests.conftest import HistogramEmbedder

    gallery = write_gallery(list(library)[:3], tmp_path / "gallery")
    GalleryIndex.build(gallery, tmp_path / "index", HistogramEmbedder(), "emb-test", views=1).close()
    assert enrolled_brands(tmp_path / "index") == {m.slug for m in list(library)[:3]}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--concurrency", "0"], "--concurrency: expected a whole number of 1 or more"),
        (["--concurrency", "two"], "--concurrency: expected a whole number of 1 or more"),
        (["--target-precision", "1.5"], "--target-precision: expected a precision in (0, 1]"),
        (["--target-precision", "0"], "--target-precision: expected a precision in (0, 1]"),
        (["--record", "../elsewhere"], "--record: expected a name of lower-case letters"),
        (["--sample", "often"], "--sample must be 'keyframes', 'all' or frames per second"),
    ],
)
def test_bad_arguments_are_one_line_and_record_nothing(tmp_path, capsys, monkeypatch, extra, message):
    from pathlib import Path

    import pipeline.eval.gate
    from pipeline.cli import main

    recorded: list[str] = []
    # Were a bad run to get as far as recording, it would land here, not in benchmarks/baseline.json.
    monkeypatch.setattr(pipeline.eval.gate, "record_evaluation", lambda name, *_a, **_k: recorded.append(name))
    demo = Path(__file__).resolve().parents[2] / "demo"
    args = ["eval", "--clips", str(demo / "clips"), "--gallery", str(demo / "gallery"), "--out", str(tmp_path / "o")]
    try:
        code = main([*args, *extra])
    except SystemExit as exc:  # argparse's own refusals exit; the rest return the status
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert recorded == []


@pytest.mark.parametrize("command", ["fakewatch eval", "scripts/evaluate.py"])
def test_a_clip_that_cannot_be_read_fails_the_run_and_is_not_recorded(tmp_path, capsys, monkeypatch, command):
    import json
    import shutil
    from pathlib import Path

    import pipeline.eval.gate
    from pipeline.cli import main as fakewatch
    from pipeline.eval.cli import main as evaluate

    recorded: list[str] = []
    monkeypatch.setattr(pipeline.eval.gate, "record_evaluation", lambda name, *_a, **_k: recorded.append(name))
    demo = Path(__file__).resolve().parents[2] / "demo"
    clips = shutil.copytree(demo / "clips", tmp_path / "clips")
    labels = json.loads((clips / "demo_bags.json").read_text())
    (clips / "gone.json").write_text(json.dumps({**labels, "video": "gone.mp4"}))
    args = ["--clips", str(clips), "--gallery", str(demo / "gallery"), "--out", str(tmp_path / "o"), "--record", "x"]
    code = fakewatch(["eval", *args]) if command == "fakewatch eval" else evaluate(args)
    err = capsys.readouterr().err
    assert code == 1 and "gone.mp4: file not found" in err and "not recorded as 'x'" in err
    assert recorded == []
    # Without a terminal, progress is plain lines a log keeps readable (no bar redrawn in place).
    assert "\r" not in err and "\x1b" not in err and "evaluating: ended at " in err
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["failed_clips"] == ["gone"]
    report = (tmp_path / "o" / "report.html").read_text()
    assert "1 of 4 clips could not be read" in report and "gone" in report
