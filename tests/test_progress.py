"""Progress of long work: a bar on a terminal, a few plain lines in a log."""

from __future__ import annotations

import pytest

from pipeline.progress import Progress


@pytest.mark.parametrize(("updates", "most"), [(0, 0), (1, 2), (500, 3)])
def test_progress_without_a_terminal_writes_a_few_lines_not_one_per_step(capsys, updates, most):
    bar = Progress("embedding gallery images", eager=False)
    for n in range(1, updates + 1):
        bar.update(n, updates)
    bar.close()
    err = capsys.readouterr().err
    assert err.count("embedding gallery images") <= most  # at start, every 5 s, and at the end
    assert (f"{updates}/{updates}" in err) == (updates > 0)


@pytest.mark.parametrize("streams", [1, 3])
def test_progress_without_a_terminal_writes_plain_lines_for_every_file(capsys, streams):
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


def test_progress_is_closed_when_the_work_fails(capsys):
    with pytest.raises(RuntimeError), Progress("rendering", 4, unit="clips") as bar:
        bar.update(1)
        raise RuntimeError("render failed")
    lines = capsys.readouterr().err.splitlines()
    # The end line is written before the error reaches the caller, so its message starts a line.
    assert lines[0] == "rendering: 1/4 clips (25%)" and lines[-1].startswith("rendering: ended at 1/4 clips after ")
