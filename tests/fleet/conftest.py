"""A local Ray cluster on loopback, and the daemon tests' real servers (nginx-rtmp, publishers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.daemon.conftest import fake_clip, receiver, rtmp  # noqa: F401  (fixtures shared with the daemon tests)

ROOT = Path(__file__).resolve().parents[2]

# Every Ray port of the test clusters binds 127.0.0.1 only (read by Ray when first imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node Ray cluster started by the test, on loopback, four logical CPUs."""
    ray = pytest.importorskip("ray", reason="install the ray extra: pip install 'fakewatch[ray]'")
    ray.init(num_cpus=4, include_dashboard=False, namespace="fakewatch-test", log_to_driver=False)
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    yield ray
    ray.shutdown()


def fleet_config(root: Path, **ray: object):  # type: ignore[no-untyped-def]
    """The shipped configuration with the demo gallery, 1 fps sampling and state under ``root``."""
    from pipeline.config import Config

    base = yaml.safe_load((ROOT / "configs" / "fakewatch.yaml").read_text())
    base.pop("calibration", None)
    base["daemon"].update(
        {
            "gallery": str(ROOT / "demo" / "gallery"),
            "index": str(root / "index"),
            "evidence": str(root / "evidence"),
            "sample": "1",
            "stall_timeout": 5.0,
            "token": "test-token",
        }
    )
    base["models"]["threads"] = 1
    base["ray"].update({"state_dir": str(root / "fleet"), "health_interval": 0.5, "health_timeout": 2.0, **ray})
    path = root / "fleet.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(base))
    return Config.load(path), path
