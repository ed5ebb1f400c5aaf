"""The quality gate: the fixed clip set must not get worse than benchmarks/baseline.json."""

from __future__ import annotations

import json

import pytest

from pipeline.eval.gate import BASELINE, compare, record_evaluation, run_gate


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


@pytest.mark.parametrize("existing", [None, {"margins": {"event_recall": 0.1}, "figures": {"event_recall": 0.5}}])
def test_record_evaluation_keeps_the_gate_and_other_records(tmp_path, existing):
    path = tmp_path / "baseline.json"
    if existing is not None:
        path.write_text(json.dumps(existing))
    metrics = {
        "event_recall": 0.36,
        "alert_precision": 0.54,
        "false_alerts_per_stream_hour": 54.0,
        "counts": {"clips": 40, "hours": 0.22, "counterfeits": 39, "caught": 14, "alerts": 26, "false_alerts": 12},
    }
    record_evaluation("eval40", metrics, "work/eval40/clips", path)
    record_evaluation("eval_more", {"event_recall": 0.3}, "work/eval_more/clips", path)
    data = json.loads(path.read_text())
    assert data["figures"] == (existing or {"figures": {}})["figures"]
    assert data["margins"] == (existing or {"margins": {}})["margins"]
    first = data["evaluation"]["eval40"]
    assert first["source"] == "work/eval40/clips"
    assert first["event_recall"] == 0.36 and first["detection_ap50"] is None
    assert first["counts"]["caught"] == 14 and first["counts"]["clips"] == 40
    assert data["evaluation"]["eval_more"]["counts"]["caught"] is None
    # Recording the same name again replaces it.
    record_evaluation("eval40", {"event_recall": 0.4}, "elsewhere", path)
    assert json.loads(path.read_text())["evaluation"]["eval40"]["source"] == "elsewhere"
