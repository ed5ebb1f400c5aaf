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


class HistogramEmbedder:
    """A deterministic stand-in embedder: normalised coarse colour histograms of the crops."""

    dim = 64
    version = "histogram"
    crop_size = 64

    def embed(self, crops):  # type: ignore[no-untyped-def]
        import numpy as np

        from pipeline.infer.embedder import Embeddings

        q = (crops // 64).reshape(len(crops), -1, 3).astype(np.int64)
        codes = q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]
        hist = (
            np.stack([np.bincount(c, minlength=64) for c in codes]).astype(np.float32)
            if len(crops)
            else np.zeros((0, 64), np.float32)
        )
        v = hist / np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), 1e-6)
        return Embeddings(v, v.copy())
