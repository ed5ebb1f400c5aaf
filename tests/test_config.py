from __future__ import annotations

import pytest
import yaml

from pipeline.config import DEFAULT_CONFIG, Config, ConfigError


def test_default_config_loads():
    cfg = Config.load()
    assert cfg.verdict.confirm >= 1 and cfg.batch.size >= 1
    assert cfg.model_path("detector").name == "detector.onnx"


def test_every_key_is_commented():
    lines = DEFAULT_CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and ":" in stripped:
            before = lines[i - 1].strip() if i else ""
            assert before.startswith("#") or stripped.endswith(":"), f"uncommented key: {line!r}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("verdict:\n  confirm: many\n", "verdict.confirm: expected a number"),
        ("verdict:\n  nonsense: 1\n", "unknown key"),
        ("gallery: [1, 2]\n", "expected a mapping"),
        ("models:\n  device_path: sometimes\n", "device_path"),
        ("detector:\n  cpu_frames_per_run: -1\n", "detector.cpu_frames_per_run: expected 0 or more"),
        ("gallery:\n  view_sizes: [110, 80]\n", r"gallery.view_sizes: expected \[smallest, largest\]"),
        ("gallery:\n  view_sizes: [0, 80]\n", r"gallery.view_sizes: expected \[smallest, largest\]"),
        ("gallery:\n  view_sizes: [80]\n", r"gallery.view_sizes: expected \[smallest, largest\]"),
        ("gallery:\n  view_sizes: [small, large]\n", r"gallery.view_sizes: expected \[smallest, largest\]"),
        ("verdict:\n  authenticity_quantile: 1.5\n", r"verdict: authenticity_quantile: expected a value in \[0, 1\]"),
        ("- just\n- a list\n", "mapping at the top level"),
        ("daemon:\n  webhook_url: hooks.example.com/x\n", r"daemon: webhook_url: expected an http\(s\)://host"),
        ("daemon:\n  webhook_url: ftp://hooks.example.com/x\n", r"daemon: webhook_url: expected an http\(s\)://host"),
        ("daemon:\n  port: 70000\n", "daemon: port: expected 1-65535"),
        ("batch:\n  size: 0\n", "batch.size and batch.queue: expected 1 or more"),
        ("batch:\n  queue: 0\n", "batch.size and batch.queue: expected 1 or more"),
        ("batch:\n  deadline_ms: -1\n", "batch.deadline_ms: expected 0 or more"),
        ("detector:\n  threshold: 1.5\n", r"detector.threshold: expected a score in \[0, 1\)"),
        ("detector:\n  iou: 0\n", r"detector.iou: expected an overlap in \(0, 1\]"),
        ("gallery:\n  views: 0\n", "gallery.neighbours and gallery.views: expected 1 or more"),
        ("gallery:\n  neighbours: 0\n", "gallery.neighbours and gallery.views: expected 1 or more"),
        ("models:\n  threads: -2\n", "models.threads: expected 0"),
        ("models:\n  library_threads: -1\n", r"models.library_threads: expected 0 \(the libraries' choice\)"),
        ("ingest:\n  decoder_threads: -1\n", r"ingest.decoder_threads: expected 0 \(ffmpeg's choice\) or more"),
        ("ray:\n  workers: 0\n", "ray.workers and ray.streams_per_worker: expected 1 or more"),
        ("ray:\n  worker_cpus: 0\n", "ray.worker_cpus must be positive"),
        ("ray:\n  health_timeout: 0\n", "ray.health_interval and ray.health_timeout"),
        ("daemon:\n  max_streams: 0\n", "daemon: max_streams: expected 1 or more"),
        ("daemon:\n  confirm: 0\n", "daemon: confirm: expected 1 or more"),
        ("daemon:\n  settle: 2\n", r"daemon: settle: expected a probability in \[0, 1\]"),
        ("verdict: {confirm: [\n", "c.yaml: not valid YAML at line 2, column 1: expected the node content"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Config.load(path)


@pytest.mark.parametrize(
    ("calibration", "message"),
    [
        ("verdict: {alert_threshold: [\n", "calibration.yaml: not valid YAML at line 2"),
        ("- 0.4\n", "calibration.yaml: expected a calibration file"),
        ("verdict: [0.4]\n", "calibration.yaml: expected a calibration file"),
    ],
)
def test_bad_calibration_file_is_named(tmp_path, calibration, message):
    (tmp_path / "calibration.yaml").write_text(calibration)
    path = tmp_path / "c.yaml"
    path.write_text("calibration: calibration.yaml\n")
    with pytest.raises(ConfigError, match=message):
        Config.load(path)


def test_bad_environment_override_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKEWATCH_VERDICT__CONFIRM", "[1")
    with pytest.raises(ConfigError, match="FAKEWATCH_VERDICT__CONFIRM: not valid YAML at line 1, column 3"):
        Config.load()


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "nope.yaml")


def test_environment_overrides(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("verdict:\n  confirm: 3\n")
    monkeypatch.setenv("FAKEWATCH_VERDICT__CONFIRM", "5")
    assert Config.load(path).verdict.confirm == 5


def test_calibration_file_is_merged(tmp_path):
    (tmp_path / "calibration.yaml").write_text("verdict:\n  alert_threshold: 0.4\n  brand_thresholds: {acme: 0.7}\n")
    path = tmp_path / "c.yaml"
    path.write_text("calibration: calibration.yaml\nverdict:\n  confirm: 2\n")
    cfg = Config.load(path)
    assert cfg.verdict.alert_threshold == 0.4 and cfg.verdict.brand_thresholds == {"acme": 0.7}
    assert cfg.verdict.confirm == 2


@pytest.mark.parametrize(
    ("text", "expected"), [("on", "on"), ("off", "off"), ("yes", "on"), ('"on"', "on"), ("auto", "auto")]
)
def test_unquoted_on_off_stay_words(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(f"models:\n  device_path: {text}\n")
    assert Config.load(path).models.device_path == expected


@pytest.mark.parametrize(
    ("learned", "enabled", "min_same_brand", "sure_lead", "recall_brand", "min_kinship", "cautions"),
    [
        pytest.param(True, True, 0.9, 0.45, 0.9, 0.5, [], id="verifier-model"),
        pytest.param(
            *(False, True, 0.9, 0.45, 0.9, 0.5),
            ["min_same_brand", "sure_lead", "recall_brand", "min_kinship:"],
            id="hand-made-with-model-settings",
        ),
        pytest.param(False, True, 0.6, -1.0, -1.0, -1.0, [], id="hand-made-as-measured"),
        pytest.param(False, True, 0.6, 0.45, -1.0, -1.0, ["sure_lead"], id="hand-made-with-a-lead"),
        pytest.param(False, True, 0.6, -1.0, 0.9, -1.0, ["recall_brand"], id="hand-made-recalling-brands"),
        pytest.param(False, True, 0.6, -1.0, -1.0, 0.5, ["min_kinship:"], id="hand-made-with-kinship"),
        pytest.param(False, False, 0.9, 0.45, 0.9, 0.5, [], id="no-verifier"),
    ],
)
def test_hand_made_verifier_with_model_settings_is_cautioned(
    tmp_path, caplog, learned, enabled, min_same_brand, sure_lead, recall_brand, min_kinship, cautions
):
    # The verdict's verifier checks were chosen with the verifier model; the hand-made score reads
    # on another scale. Loading says so (a warning, not an error: the settings are valid).
    path = tmp_path / "c.yaml"
    verifier = {"learned": learned, "enabled": enabled}
    verdict = {"min_same_brand": min_same_brand, "sure_lead": sure_lead, "min_kinship": min_kinship}
    verdict |= {"recall_brand": recall_brand, "kinship": [1.0, 1.0, 1.0, 1.0, -2.0]}
    path.write_text(yaml.safe_dump({"verifier": verifier, "verdict": verdict}))
    with caplog.at_level("WARNING", logger="pipeline.config"):
        config = Config.load(path)
    assert [c.split()[0] for c in config.cautions()] == [f"verdict.{name}" for name in cautions]
    assert len(caplog.records) == len(cautions)


@pytest.mark.parametrize(("learned", "count", "cautioned"), [(False, 6, True), (False, 0, False), (True, 6, False)])
def test_same_brand_count_with_the_hand_made_score_is_cautioned(tmp_path, learned, count, cautioned):
    path = tmp_path / "c.yaml"
    verdict = {"min_same_brand": 0.6, "sure_lead": -1.0, "recall_brand": -1.0, "same_brand_count": count}
    path.write_text(yaml.safe_dump({"verifier": {"learned": learned}, "verdict": verdict}))
    assert any(c.startswith("verdict.same_brand_count") for c in Config.load(path).cautions()) == cautioned
