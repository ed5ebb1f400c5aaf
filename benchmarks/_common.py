"""Helpers shared by the benchmark scripts: timing loops and the one-line JSON report."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rate(fn: Callable[[], int], min_seconds: float = 3.0, warmup: int = 2) -> float:
    """Items per second of ``fn`` (which returns how many items it processed)."""
    for _ in range(warmup):
        fn()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        done += fn()
    return done / (time.perf_counter() - start)


def report(figure: dict) -> None:
    """Print the benchmark's result as one JSON line."""
    print(json.dumps(figure, sort_keys=True))
