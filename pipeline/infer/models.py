"""The shipped models: where they are, and checking them against the manifest before use."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DETECTOR_FILE = "detector.onnx"
EMBEDDER_FILE = "embedder.onnx"


class ModelError(RuntimeError):
    """A model file is missing, unlisted or does not match its recorded checksum."""


@dataclass(frozen=True)
class ModelInfo:
    """A verified model file and its version string (recorded with galleries and alerts)."""

    path: Path
    kind: str
    sha256: str

    @property
    def version(self) -> str:
        return f"{self.kind}-{self.sha256[:12]}"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_model(path: str | Path, manifest: str | Path | None = None) -> ModelInfo:
    """Check ``path`` against the manifest beside it (or ``manifest``) and return its info.

    Raises:
        ModelError: with a message saying what is wrong and how to fix it.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    manifest_path = Path(manifest) if manifest else path.parent / "manifest.json"
    if not manifest_path.is_file():
        raise ModelError(f"no manifest for {path}: expected {manifest_path}")
    try:
        entries = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"manifest {manifest_path} is not valid JSON: {exc}") from None
    entry = entries.get(path.name)
    if not isinstance(entry, dict) or "sha256" not in entry:
        raise ModelError(f"{path.name} is not listed in {manifest_path}")
    actual = file_sha256(path)
    if actual != entry["sha256"]:
        raise ModelError(
            f"checksum mismatch for {path}: manifest says {entry['sha256'][:12]}..., file is "
            f"{actual[:12]}...; the file is corrupt or was replaced without updating the manifest"
        )
    return ModelInfo(path=path, kind=str(entry.get("kind", path.stem)), sha256=actual)
