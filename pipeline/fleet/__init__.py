"""The fleet: many workers on a Ray cluster (``fakewatch serve --ray``, ``replay --ray``).

Only this package imports Ray, and only when a ``--ray`` command runs; install it with the
``fakewatch[ray]`` extra. ``registry`` (placement bookkeeping) needs no Ray at all.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config import Config


class RayMissing(RuntimeError):
    """Ray is not installed."""


def require_ray(local: bool = False) -> ModuleType:
    """Import Ray, or explain how to install it.

    Args:
        local: this process will start a one-machine cluster of its own: keep it on loopback
            (Ray reads the switch when it is first imported, so call this before any other import).
    """
    if local:
        # Ray's own switch for single-machine clusters: every Ray port binds 127.0.0.1 only.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise RayMissing("--ray needs Ray: pip install 'fakewatch[ray]'") from None
    return ray


def connect(config: Config, address: str | None = None) -> bool:
    """Join the cluster at ``address`` (else ``ray.address``; a local one when both are empty).

    Does nothing when Ray is already initialised in this process. Returns whether it started
    Ray here (the caller then shuts it down when done).
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    rc = config.ray
    ray.init(
        address=address or rc.address or None, namespace=rc.namespace, include_dashboard=False, log_to_driver=False
    )
    return True
