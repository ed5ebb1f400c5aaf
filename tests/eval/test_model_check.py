"""Model validation helpers: query sets (with the verifier's detail crops) and the embedder report."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.eval.model_check import embedder_report, query_set, verifier_scores
from pipeline.infer.verifier import VerifierConfig
from tests.conftest import HistogramEmbedder


@pytest.fixture(scope="module")
def marks(library) -> list:  # type: ignore[no-untyped-def]
    return list(library)[:3]


def test_detail_crops_come_from_the_same_renderings(marks: list) -> None:
    plain = query_set(marks, 1, seed=5, size=64)
    crops, brand, family, details = query_set(marks, 1, seed=5, size=64, detail=128)
    assert plain[3] is None
    # The detail size takes nothing from the random stream: the embedder sees the same crops.
    np.testing.assert_array_equal(crops, plain[0])
    np.testing.assert_array_equal(brand, plain[1])
    np.testing.assert_array_equal(family, plain[2])
    assert details is not None and details.shape == (len(crops), 128, 128, 3)


def test_report_with_the_verifier(marks: list) -> None:
    cfg = VerifierConfig()
    report = embedder_report(HistogramEmbedder(), marks, views=2, authentic=2, verifier=(cfg, 1.0, 0.8)).to_dict()
    verified = report["verified_auc"]
    assert set(verified) >= {"all"} and set(verified) - {"all"} <= set(report["counterfeit_auc_by_family"])
    assert all(0.0 <= v <= 1.0 for v in verified.values())
    assert "verified_auc" not in embedder_report(HistogramEmbedder(), marks, views=2, authentic=1).to_dict()


def test_verifier_scores_need_crops_of_its_side(marks: list) -> None:
    crops = np.zeros((1, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="expected 128 px detail crops, got 64"):
        verifier_scores(crops, np.zeros(1, np.int64), marks, VerifierConfig())
