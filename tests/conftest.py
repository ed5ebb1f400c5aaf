"""Shared fixtures: the committed sample of marks (held-out brands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.synth.marks import MarkLibrary

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_MARKS = ROOT / "data" / "marks"


@pytest.fixture(scope="session")
def library() -> MarkLibrary:
    return MarkLibrary.from_folder(SAMPLE_MARKS)
