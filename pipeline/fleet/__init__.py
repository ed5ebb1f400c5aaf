"""The fleet: many workers on a Ray cluster (``fakewatch serve --ray``, ``replay --ray``).

Only this package imports Ray, and only when a ``--ray`` command runs; install it with the
``fakewatch[ray]`` extra. ``registry`` (placement bookkeeping) needs no Ray at all.
"""

from __future__ import annotations

from types import ModuleType


class RayMissing(RuntimeError):
    """Ray is not installed."""


def require_ray() -> ModuleType:
    """Import Ray, or explain how to install it."""
    try:
        import ray
    except ImportError:
        raise RayMissing("--ray needs Ray: pip install 'fakewatch[ray]'") from None
    return ray
