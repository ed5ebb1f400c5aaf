"""The quality gate: the fixed clip set must not get worse than benchmarks/baseline.json."""

from __future__ import annotations

import json

import pytest

from pipeline.eval.gate import BASELINE, compare, run_gate


def test_gate_against_baseline(tmp_path):
    baseline = json.loads(BASELINE.read_text())
    metrics = run_gate(tmp_path)
    assert compare(metrics, baseline) == []


@pytest.mark.parametrize(
    ("metrics", "worse"),
    [
        ({"event_recall": 0.9, "false_alerts_per_stream_hour": 1.0}, []),
        ({"event_recall": 0.8, "false_alerts_per_stream_hour": 1.0}, ["event_recall"]),
        ({"event_recall": 0.9, "false_alerts_per_stream_hour": 9.0}, ["false_alerts_per_stream_hour"]),
        ({"false_alerts_per_stream_hour": 1.0}, ["event_recall"]),
    ],
)
def test_compare(metrics, worse):
    baseline = {
        "margins": {"event_recall": 0.05, "false_alerts_per_stream_hour": 2.0},
        "figures": {"event_recall": 0.9, "false_alerts_per_stream_hour": 1.0},
    }
    assert [w.split(":")[0] for w in compare(metrics, baseline)] == worse
