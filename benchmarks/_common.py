"""Helpers shared by the benchmark scripts: timing loops and the one-line JSON report."""

from __future__ import annotations

import json
import os
import platform
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


def machine() -> dict[str, object]:
    """What the figures were measured on. This machine's speed varies from session to session
    (detector 19-113 frames/s on one core, the same code): a virtual machine's CPU reads only as
    "AMD EPYC", and its family and model tell the generations apart (family 23 model 1 is Zen 1)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = info.get("flags", "").split()
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "cores": os.cpu_count(),
        "avx512": "avx512f" in flags,
    }


def report(figure: dict) -> None:
    """Print the benchmark's result, with the machine it was measured on, as one JSON line."""
    print(json.dumps({**figure, "machine": machine()}, sort_keys=True))


ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "work" / "bench"


def bench_clip(seconds: float = 20.0, seed: int = 7) -> Path:
    """A 720p30 H.264 clip with a 2 s GOP from the generator, made once and cached."""
    from pipeline.synth.clips import plan_clip, render_clip
    from pipeline.synth.marks import MarkLibrary

    name = f"bench_{int(seconds)}s_{seed}"
    path = BENCH_DIR / f"{name}.mp4"
    if not path.exists():
        import numpy as np

        lib = list(MarkLibrary.from_folder(ROOT / "data" / "marks"))
        spec = plan_clip(
            name, np.random.default_rng(seed), lib[:40], lib[40:], seconds=seconds, objects=3, min_mark=60, max_mark=220
        )
        render_clip(spec, BENCH_DIR)
    return path


def bench_index() -> Path:
    """A gallery index of the sample marks (built once per embedder version)."""
    from pipeline.cli import resolve_index
    from pipeline.synth.clips import write_gallery
    from pipeline.synth.marks import MarkLibrary

    gallery = BENCH_DIR / "gallery"
    if not gallery.exists():
        write_gallery(list(MarkLibrary.from_folder(ROOT / "data" / "marks"))[:40], gallery)
    return resolve_index(gallery)
