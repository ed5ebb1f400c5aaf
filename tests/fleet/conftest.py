"""A local Ray cluster on loopback, and the daemon tests' real servers (nginx-rtmp, publishers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.daemon.conftest import fake_clip, rtmp  # noqa: F401  (fixtures shared with the daemon tests)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node Ray cluster started by the test, bound to 127.0.0.1, four logical CPUs."""
    ray = pytest.importorskip("ray", reason="install the ray extra: pip install 'fakewatch[ray]'")
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        namespace="fakewatch-test",
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
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
