"""One case per scoring rule of formats.md section 4, with hand-made labels and alerts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.alerts import Alert, AlertFormatError, read_alerts
from pipeline.eval.metrics import clip_bootstrap
from pipeline.eval.scoring import (
    FALSE_ALERT_KINDS,
    Clip,
    LabelError,
    LabelledObject,
    false_alert_kind,
    false_alert_kinds,
    load_clip,
    recall_by_family,
    score,
)

FPS = 10.0


def obj(id_, brand, authentic, first=10, last=30, box=(100, 100, 200, 200)):
    frames = np.arange(first, last + 1)
    return LabelledObject(id_, brand, authentic, frames, np.tile(np.array(box, np.float32), (len(frames), 1)))


def clip(*objects, stream="s1", frames=100):
    return Clip(stream, None, FPS, frames, (640, 360), tuple(objects))  # type: ignore[arg-type]


def alert(t, brand="acme", box=(100, 100, 200, 200), stream="s1"):
    return Alert(stream=stream, t=t, frame=int(t * FPS), brand=brand, box=box, score=0.9)


FAKE = obj(1, "acme", False)
REAL = obj(2, "acme", True, box=(400, 100, 500, 200))
UNENROLLED = obj(3, "nobrand", False, box=(300, 250, 360, 300))


@pytest.mark.parametrize(
    ("objects", "alerts", "caught", "true_alerts"),
    [
        pytest.param([FAKE], [alert(2.0)], 1, 1, id="caught"),
        pytest.param([REAL], [alert(2.0, box=(400, 100, 500, 200))], 0, 0, id="alert-on-authentic"),
        pytest.param(
            [FAKE, UNENROLLED],
            [alert(2.0, brand="acme", box=(300, 250, 360, 300))],
            0,
            0,
            id="alert-on-unenrolled-mark",
        ),
        pytest.param([FAKE], [alert(2.0, brand="other")], 0, 0, id="wrong-brand"),
        # IoU of [100,100,200,200] with a shifted box: 0.29 vs 0.31
        pytest.param([FAKE], [alert(2.0, box=(155, 100, 255, 200))], 0, 0, id="iou-just-under"),
        pytest.param([FAKE], [alert(2.0, box=(152, 100, 252, 200))], 1, 1, id="iou-just-over"),
        pytest.param([FAKE], [alert(1.0 - 0.5 + 0.01)], 1, 1, id="just-inside-before"),
        pytest.param([FAKE], [alert(1.0 - 0.5 - 0.01)], 0, 0, id="just-outside-before"),
        pytest.param([FAKE], [alert(3.0 + 2.0 - 0.01)], 1, 1, id="just-inside-after"),
        pytest.param([FAKE], [alert(3.0 + 2.0 + 0.01)], 0, 0, id="just-outside-after"),
        pytest.param([FAKE], [alert(1.5), alert(2.5)], 1, 2, id="two-alerts-one-counterfeit"),
        pytest.param([], [], 0, 0, id="no-objects"),
        pytest.param([FAKE], [alert(2.0, stream="unknown")], 0, 0, id="stream-not-in-labels"),
    ],
)
def test_rules(objects, alerts, caught, true_alerts):
    result = score([clip(*objects)], alerts)
    assert result.caught == caught
    assert result.true_alerts == true_alerts
    assert result.false_alerts == len(alerts) - true_alerts


def test_ratios_and_time_to_first_alert():
    result = score([clip(FAKE, REAL)], [alert(1.5), alert(2.5), alert(2.0, box=(400, 100, 500, 200))])
    d = result.to_dict()
    assert d["event_recall"] == 1.0
    assert d["alert_precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert d["median_time_to_first_alert_s"] == pytest.approx(0.5)
    assert d["alerts_per_caught_counterfeit"] == 2.0
    assert d["false_alerts_per_stream_hour"] == pytest.approx(1 / (10 / 3600), rel=1e-3)


def test_no_alerts_no_objects_has_undefined_ratios():
    d = score([clip()], []).to_dict()
    assert d["event_recall"] is None and d["alert_precision"] is None


GOOD = {
    "format": "fakewatch-labels/1",
    "video": "a.mp4",
    "fps": 30,
    "frames": 60,
    "size": [320, 180],
    "objects": [{"id": 1, "brand": "acme", "authentic": False, "boxes": [[0, 10, 10, 50, 50]]}],
}


def _with(**changes):
    d = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    return d


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(format="fakewatch-labels/9"), "unknown format"),
        (_with(fps=None), "missing field 'fps'"),
        (_with(objects=[{"id": 1, "brand": "a", "boxes": [[0, 1, 1, 5, 5]]}]), "missing field 'authentic'"),
        (_with(objects=[{"id": 1, "brand": "a", "authentic": True, "boxes": [[0, 1, 1, 500, 5]]}]), "outside"),
        (_with(objects=[{"id": 1, "brand": "a", "authentic": True, "boxes": [[0, 1, 1, 5]]}]), "5 numbers"),
        (_with(objects=[{"id": 1, "brand": "a", "authentic": True, "boxes": [[99, 1, 1, 5, 5]]}]), "frame numbers"),
        ("{not json", "not JSON"),
        (_with(objects={"id": 1}), "objects must be a list"),
        (_with(objects=[{"id": 1, "brand": "a", "authentic": "no", "boxes": [[0, 1, 1, 5, 5]]}]), "true or false"),
        (_with(objects=[{"id": 1, "brand": "a", "authentic": 0, "boxes": [[0, 1, 1, 5, 5]]}]), "true or false"),
        (_with(objects=[{"id": "1", "brand": "a", "authentic": True, "boxes": [[0, 1, 1, 5, 5]]}]), "whole number"),
        (_with(objects=[{"id": 1.5, "brand": "a", "authentic": True, "boxes": [[0, 1, 1, 5, 5]]}]), "whole number"),
        (
            _with(objects=[{"id": 1, "brand": b, "authentic": True, "boxes": [[0, 1, 1, 5, 5]]} for b in "ab"]),
            "id 1 is used by an earlier object",
        ),
    ],
)
def test_malformed_labels_name_the_file(tmp_path, data, message):
    path = tmp_path / "a.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(LabelError, match=message) as err:
        load_clip(path)
    assert str(path) in str(err.value)


def test_good_label(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(GOOD))
    c = load_clip(path)
    assert c.stream == "a" and len(c.counterfeits) == 1 and c.seconds == 2.0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "not JSON"),
        ('{"stream": "s", "t": 1}', "missing field"),
        (
            '{"stream": "s", "t": 1, "frame": 1, "brand": "b", "box": [1, 2, 3], "score": 0.5, "kind": "k"}',
            "bad field",
        ),
        (
            '{"stream": "s", "t": "x", "frame": 1, "brand": "b", "box": [1, 2, 3, 4], "score": 0.5, "kind": "k"}',
            "bad field",
        ),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_alert_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "alerts.jsonl"
    good = json.dumps(alert(1.0).to_json())
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(AlertFormatError, match=message) as err:
        read_alerts(path)
    assert f"{path}:2" in str(err.value)


@pytest.mark.parametrize(
    ("preds", "truths", "expected"),
    [
        ([([[0, 0, 10, 10]], [0.9])], [np.array([[0, 0, 10, 10]])], 1.0),
        ([([[0, 0, 10, 10], [50, 50, 60, 60]], [0.5, 0.9])], [np.array([[0, 0, 10, 10]])], 0.5),
        ([(np.zeros((0, 4)), [])], [np.array([[0, 0, 10, 10]])], 0.0),
    ],
)
def test_average_precision(preds, truths, expected):
    from pipeline.eval.metrics import average_precision

    assert average_precision(preds, truths) == pytest.approx(expected)


def test_average_precision_size_range_ignores_other_sizes():
    from pipeline.eval.metrics import average_precision

    preds = [([[0, 0, 10, 10], [100, 100, 200, 200]], [0.9, 0.8])]
    truths = [np.array([[0, 0, 10, 10], [100, 100, 200, 200]], np.float32)]
    # The large box is neither a hit nor a false detection in the small-size breakdown.
    assert average_precision(preds, truths, size_range=(0, 32)) == pytest.approx(1.0)
    assert np.isnan(average_precision(preds, [np.zeros((0, 4))], size_range=(0, 32)))


def test_roc_auc():
    from pipeline.eval.metrics import roc_auc

    assert roc_auc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert np.isnan(roc_auc(np.array([0.5]), np.array([True])))


@pytest.mark.parametrize(
    ("counterfeits", "caught", "alerts", "false_alerts", "recall", "precision"),
    [
        # every clip alike: no resample differs, the interval is the figure itself
        ([1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 0, 0], (1.0, 1.0), (1.0, 1.0)),
        ([2, 2], [1, 1], [2, 2], [1, 1], (0.5, 0.5), (0.5, 0.5)),
        # clips that differ: the interval spans them
        ([1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 1, 1], [0, 1, 0, 1], None, None),
        # no alerts anywhere: precision cannot be measured
        ([1, 1], [0, 0], [0, 0], [0, 0], (0.0, 0.0), "none"),
    ],
)
def test_clip_bootstrap(counterfeits, caught, alerts, false_alerts, recall, precision):
    hours = np.full(len(caught), 1 / 180)
    got = clip_bootstrap(np.array(counterfeits), np.array(caught), np.array(alerts), np.array(false_alerts), hours)
    if recall is None:
        lo, hi = got["event_recall"]
        assert 0.0 <= lo < 0.5 < hi <= 1.0
    else:
        assert got["event_recall"] == recall
    if precision == "none":
        assert got["alert_precision"] is None
    elif precision is not None:
        assert got["alert_precision"] == precision
    assert got["false_alerts_per_stream_hour"][0] >= 0.0


def test_clip_bootstrap_without_clips():
    empty = np.zeros(0)
    assert clip_bootstrap(empty, empty, empty, empty, empty) == dict.fromkeys(
        ("event_recall", "alert_precision", "false_alerts_per_stream_hour")
    )


def test_clip_bootstrap_rejects_ragged_inputs():
    with pytest.raises(ValueError, match="expected five"):
        clip_bootstrap(np.ones(3), np.ones(3), np.ones(2), np.ones(3), np.ones(3))


OTHER_REAL = obj(4, "other", True, box=(600, 100, 700, 200))


@pytest.mark.parametrize(
    ("objects", "a", "kind"),
    [
        pytest.param([FAKE], alert(2.0, brand="other"), "counterfeit_named_as_another_brand", id="fake-misnamed"),
        pytest.param([REAL], alert(2.0, box=(400, 100, 500, 200)), "authentic_mark_of_the_brand", id="authentic"),
        pytest.param([OTHER_REAL], alert(2.0, box=(600, 100, 700, 200)), "mark_of_another_brand", id="other-mark"),
        pytest.param([FAKE], alert(2.0, box=(155, 100, 255, 200)), "counterfeit_of_the_brand_misplaced", id="loose"),
        pytest.param([FAKE], alert(9.0), "no_labelled_mark", id="after-the-object"),
        pytest.param([FAKE], alert(2.0, box=(500, 300, 600, 350)), "no_labelled_mark", id="elsewhere"),
        pytest.param([], alert(2.0), "no_labelled_mark", id="no-objects"),
    ],
)
def test_false_alert_kind(objects, a, kind):
    assert false_alert_kind(a, clip(*objects)) == kind


def test_false_alert_kinds_count_only_false_alerts():
    clips = [clip(FAKE, REAL)]
    alerts = [alert(2.0), alert(2.0, box=(400, 100, 500, 200)), alert(2.0, stream="unknown")]
    counts = false_alert_kinds(clips, alerts, score(clips, alerts))
    assert set(counts) == set(FALSE_ALERT_KINDS) and sum(counts.values()) == 2
    assert counts["authentic_mark_of_the_brand"] == 1 and counts["no_labelled_mark"] == 1


def fake_of(family, box):
    return LabelledObject(4, "acme", False, np.arange(10, 31), np.tile(np.float32(box), (21, 1)), family)


WARP = fake_of("warp", (100, 100, 200, 200))
MIRROR = fake_of("mirror", (400, 300, 460, 350))


@pytest.mark.parametrize(
    ("objects", "alerts", "expected"),
    [
        pytest.param([], [], {}, id="no-counterfeits"),
        pytest.param([REAL], [], {}, id="authentic-only"),
        pytest.param([FAKE], [], {"unlabelled": (1, 0, 0.0)}, id="no-family-field"),
        pytest.param(
            [WARP, MIRROR, REAL],
            [alert(2.0)],
            {"mirror": (1, 0, 0.0), "warp": (1, 1, 1.0)},
            id="one-family-caught",
        ),
        pytest.param([WARP], [alert(2.0), alert(2.5)], {"warp": (1, 1, 1.0)}, id="two-alerts-count-once"),
    ],
)
def test_recall_by_family(objects, alerts, expected):
    got = recall_by_family(score([clip(*objects)], alerts))
    assert {k: (v["counterfeits"], v["caught"], v["event_recall"]) for k, v in got.items()} == expected
    assert list(got) == sorted(got)


@pytest.mark.parametrize(
    ("enrolled", "alerts", "counterfeits", "caught", "false_alerts"),
    [
        pytest.param(None, [], 2, 0, 0, id="no-gallery-every-fake-counts"),
        pytest.param({"acme"}, [], 1, 0, 0, id="fake-of-unenrolled-brand-is-not-a-miss"),
        pytest.param({"acme"}, [alert(2.0)], 1, 1, 0, id="enrolled-fake-caught"),
        pytest.param(
            {"acme"}, [alert(2.0, brand="nobrand", box=(300, 250, 360, 300))], 1, 0, 1, id="alert-on-it-is-false"
        ),
        pytest.param(set(), [], 0, 0, 0, id="empty-gallery"),
    ],
)
def test_counterfeits_of_unenrolled_brands(enrolled, alerts, counterfeits, caught, false_alerts):
    result = score([clip(FAKE, UNENROLLED)], alerts, enrolled)
    assert (result.counterfeits, result.caught, result.false_alerts) == (counterfeits, caught, false_alerts)
