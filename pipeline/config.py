"""Typed configuration, loaded from ``configs/fakewatch.yaml`` (every key documented there)."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from pipeline.infer.verifier import VerifierConfig
from pipeline.verdict import VerdictConfig

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "fakewatch.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class ModelsConfig:
    detector: str = "models/detector.onnx"
    embedder: str = "models/embedder.onnx"
    cropper: str = "models/cropper.onnx"
    verifier: str = "models/verifier.onnx"
    hands: str = "models/hands.onnx"
    providers: tuple[str, ...] = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    threads: int = 0
    library_threads: int = 0
    device_path: str = "auto"

    def __post_init__(self) -> None:
        if self.device_path not in ("auto", "on", "off"):
            raise ConfigError(f"models.device_path: expected auto, on or off, got {self.device_path!r}")
        if self.threads < 0:
            raise ConfigError(f"models.threads: expected 0 (all cores) or more, got {self.threads}")
        if self.library_threads < 0:
            raise ConfigError(
                f"models.library_threads: expected 0 (the libraries' choice) or more, got {self.library_threads}"
            )


@dataclass(frozen=True)
class DetectorConfig:
    threshold: float = 0.3
    iou: float = 0.5
    cpu_frames_per_run: int = 1

    def __post_init__(self) -> None:
        if self.cpu_frames_per_run < 0:
            raise ConfigError(f"detector.cpu_frames_per_run: expected 0 or more, got {self.cpu_frames_per_run}")
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"detector.threshold: expected a score in [0, 1), got {self.threshold}")
        if not 0.0 < self.iou <= 1.0:
            raise ConfigError(f"detector.iou: expected an overlap in (0, 1], got {self.iou}")


@dataclass(frozen=True)
class BatchConfig:
    size: int = 8
    deadline_ms: float = 50.0
    queue: int = 32

    def __post_init__(self) -> None:
        # A batch of 0 never fills (replay would wait for ever), and a queue of 0 is unbounded.
        if self.size < 1 or self.queue < 1:
            raise ConfigError(f"batch.size and batch.queue: expected 1 or more, got {self.size} and {self.queue}")
        if self.deadline_ms < 0:
            raise ConfigError(f"batch.deadline_ms: expected 0 or more milliseconds, got {self.deadline_ms}")


@dataclass(frozen=True)
class GalleryConfig:
    neighbours: int = 24
    views: int = 12
    view_sizes: tuple[float, float] = (80.0, 110.0)

    def __post_init__(self) -> None:
        if self.neighbours < 1 or self.views < 1:
            raise ConfigError(
                f"gallery.neighbours and gallery.views: expected 1 or more, got {self.neighbours} and {self.views}"
            )
        sizes = self.view_sizes
        numbers = len(sizes) == 2 and all(isinstance(v, int | float) for v in sizes)
        if not numbers or not 0 < sizes[0] <= sizes[1]:
            raise ConfigError(f"gallery.view_sizes: expected [smallest, largest] pixels, got {list(self.view_sizes)}")


@dataclass(frozen=True)
class IngestConfig:
    sample: str = "2"
    skip_nonref: bool = True
    decoder_threads: int = 1  # threads of each ffmpeg decoder (0 = ffmpeg's choice)

    def __post_init__(self) -> None:
        if self.decoder_threads < 0:
            raise ConfigError(
                f"ingest.decoder_threads: expected 0 (ffmpeg's choice) or more, got {self.decoder_threads}"
            )


@dataclass(frozen=True)
class DaemonConfig:
    host: str = "127.0.0.1"
    port: int = 8750
    token: str = ""
    index: str = "demo/.gallery.index"
    gallery: str = "demo/gallery"
    outbox: str = "out/daemon/outbox.sqlite"
    evidence: str = "out/daemon/evidence"
    webhook_url: str = ""
    webhook_secret: str = ""
    allow_files: bool = False
    sample: str = "keyframes"
    max_streams: int = 200
    stall_timeout: float = 10.0
    queue: int = 64
    max_wait: float = 2.0  # seconds a decoded frame may wait in the queue; older ones are dropped (0 = never)
    shutdown_timeout: float = 8.0
    verifier: bool = False  # the live worker runs the verifier too (where verifier.enabled); see configs
    verify_every: int = 3  # live: the verifier checks a track's first mark and every this many after
    settle: float = 0.9  # live: a track the verifier found authentic this surely needs no more checks (0 = off)
    confirm: int = 3  # live: samples a track needs before it may alert (replay's is verdict.confirm)

    def __post_init__(self) -> None:
        # Checked at start-up: a bad webhook address would otherwise only show as alerts that
        # never arrive, retried for ever.
        if self.webhook_url:
            url = urlsplit(self.webhook_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"webhook_url: expected an http(s)://host/... address, got {self.webhook_url!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port: expected 1-65535, got {self.port}")
        for name in ("max_streams", "queue", "verify_every", "confirm"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected 1 or more, got {getattr(self, name)}")
        if self.max_wait < 0:
            raise ValueError(f"max_wait: expected 0 or more seconds (0 = never drop), got {self.max_wait}")
        if self.stall_timeout <= 0 or self.shutdown_timeout < 0:
            raise ValueError("stall_timeout must be positive and shutdown_timeout 0 or more (seconds)")
        if not 0.0 <= self.settle <= 1.0:
            raise ValueError(f"settle: expected a probability in [0, 1] (0 = off), got {self.settle}")


@dataclass(frozen=True)
class RayConfig:
    """The fleet on Ray (``fakewatch serve --ray``, ``replay --ray``, ``evaluate --ray``)."""

    address: str = ""
    namespace: str = "fakewatch"
    workers: int = 2
    streams_per_worker: int = 50
    worker_cpus: float = 1.0
    worker_gpus: float = 0.0
    state_dir: str = "out/fleet"
    health_interval: float = 1.0
    health_timeout: float = 3.0
    offline_actors: int = 0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.streams_per_worker < 1 or self.offline_actors < 0:
            raise ConfigError(
                "ray.workers and ray.streams_per_worker: expected 1 or more, ray.offline_actors 0 or more; got "
                f"{self.workers}, {self.streams_per_worker}, {self.offline_actors}"
            )
        if self.worker_cpus <= 0 or self.worker_gpus < 0:
            raise ConfigError(
                f"ray.worker_cpus must be positive and worker_gpus 0 or more, got {self.worker_cpus} and "
                f"{self.worker_gpus}"
            )
        if self.health_interval <= 0 or self.health_timeout <= 0:
            raise ConfigError("ray.health_interval and ray.health_timeout: expected positive seconds")


@dataclass(frozen=True)
class Config:
    """The whole runtime configuration."""

    models: ModelsConfig = field(default_factory=ModelsConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    verdict: VerdictConfig = field(default_factory=VerdictConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def path(self, value: str) -> Path:
        """A path from the config; relative paths start at the repository root."""
        p = Path(value)
        return p if p.is_absolute() else ROOT / p

    def model_path(self, name: str) -> Path:
        """A model path from the config, relative paths taken from the repository root."""
        p = Path(getattr(self.models, name))
        return p if p.is_absolute() else ROOT / p

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
        """Load ``path`` (default: configs/fakewatch.yaml), then a calibration file beside it."""
        path = Path(path) if path else DEFAULT_CONFIG
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        data = _parse_yaml(path.read_text(), str(path)) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        calib = data.pop("calibration", None)
        if calib:
            cpath = Path(calib) if Path(calib).is_absolute() else path.parent / calib
            if cpath.is_file():
                extra = _parse_yaml(cpath.read_text(), str(cpath)) or {}
                if not isinstance(extra, dict) or not isinstance(extra.get("verdict", {}), dict):
                    raise ConfigError(f"{cpath}: expected a calibration file (a mapping with a verdict: section)")
                data.setdefault("verdict", {}).update(extra.get("verdict", {}))
        for key, value in (overrides or {}).items():
            section, _, name = key.partition(".")
            data.setdefault(section, {})[name] = value
        _env_overrides(data)
        config = _build(cls, data, "")
        for caution in config.cautions():
            log.warning("%s", caution)
        return config

    def cautions(self) -> list[str]:
        """Settings that load but were never measured together: the verdict's verifier checks were
        chosen with the verifier model, and the hand-made score (``verifier.learned: false``) reads
        on another scale."""
        v, d = self.verifier, self.verdict
        if not v.enabled or v.learned:
            return []
        out = []
        if d.min_same_brand > 0.6:
            out.append(
                f"verdict.min_same_brand {d.min_same_brand} was chosen with the verifier model; with "
                "verifier.learned false the gate reads the alignment's agreement (a fake's is about 0.75): "
                "it was measured at 0.6"
            )
        if d.sure_lead >= 0:
            out.append("verdict.sure_lead was measured with the verifier model; with verifier.learned false, set -1")
        if d.same_brand_count > 0:
            out.append(
                "verdict.same_brand_count was measured with the verifier model; with verifier.learned false, set 0"
            )
        if d.recall_brand >= 0:
            out.append(
                "verdict.recall_brand was measured with the verifier model; with verifier.learned false the "
                "alignment's agreement reaches it far more often (every brand recalled is checked again): set -1"
            )
        if d.min_kinship >= 0:
            out.append(
                "verdict.min_kinship: the kinship weights were fitted on the verifier model's same-brand figure; "
                "with verifier.learned false, set -1 (or refit them with scripts/fit_kinship.py)"
            )
        return out


def _env_overrides(data: dict) -> None:
    """``FAKEWATCH_SECTION__KEY=value`` overrides ``section.key`` (YAML-parsed value)."""
    for name, value in os.environ.items():
        if name.startswith("FAKEWATCH_") and "__" in name:
            section, key = name[len("FAKEWATCH_") :].lower().split("__", 1)
            data.setdefault(section, {})[key] = _parse_yaml(value, name)


def _parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML; a syntax error is one line naming ``where`` and the place."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}") from None


T = TypeVar("T")


def _build(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        key = f"{where}.{name}" if where else name
        default = (
            f.default_factory()
            if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
            else f.default
        )
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, key)
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value) if isinstance(value, list | tuple) else (value,)
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping")
            kwargs[name] = {str(k): float(v) for k, v in value.items()}
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: expected true or false, got {value!r}")
            kwargs[name] = value
        elif isinstance(default, str):
            if isinstance(value, bool):
                # YAML 1.1 reads an unquoted on/off/yes/no as a boolean: keep the word the user meant.
                value = "on" if value else "off"
            kwargs[name] = "" if value is None else str(value)
        elif isinstance(default, int | float):
            try:
                kwargs[name] = type(default)(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from None
