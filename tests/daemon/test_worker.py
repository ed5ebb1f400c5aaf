"""The live worker built from the configuration."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from pipeline.config import Config
from pipeline.daemon.worker import Worker
from pipeline.types import Frame


def live_config(tmp_path, base: Config | None = None, **daemon: object) -> Config:
    """``base`` (the shipped configuration by default) with these ``daemon`` settings, its outbox
    and evidence under ``tmp_path`` and its index built from the demo gallery (cached) instead."""
    base = base or Config.load()
    where = {
        "outbox": str(tmp_path / "outbox.sqlite"),
        "evidence": str(tmp_path / "evidence"),
        "index": str(tmp_path / "no-index"),
    }
    return dataclasses.replace(base, daemon=dataclasses.replace(base.daemon, **where, **daemon))


@pytest.mark.parametrize(
    ("enabled", "live", "verifies"),
    [
        (True, False, False),  # the shipped configuration: replay verifies, live work does not
        (True, True, True),
        (False, True, False),  # verifier.enabled off turns it off everywhere
        (False, False, False),
    ],
)
def test_the_live_worker_has_its_own_verifier_switch(tmp_path, enabled: bool, live: bool, verifies: bool) -> None:
    base = Config.load()
    cfg = live_config(
        tmp_path, dataclasses.replace(base, verifier=dataclasses.replace(base.verifier, enabled=enabled)), verifier=live
    )
    worker = Worker.from_config(cfg)
    try:
        assert (worker.spine.verifier is not None) is verifies
        assert worker.config.verifier.enabled is verifies
    finally:
        worker.shutdown(timeout=1.0)


@pytest.mark.parametrize(("every", "settle", "confirm"), [(1, 0.0, 4), (3, 0.9, 3), (3, 0.9, 2)])
def test_the_live_worker_checks_tracks_as_its_own_settings_say(
    tmp_path, every: int, settle: float, confirm: int
) -> None:
    # daemon.verify_every, daemon.settle and daemon.confirm are the live worker's; replay keeps
    # verdict's own.
    base = Config.load()
    cfg = live_config(tmp_path, base, verifier=True, verify_every=every, settle=settle, confirm=confirm)
    worker = Worker.from_config(cfg)
    try:
        verdict = worker.spine.config.verdict
        assert (verdict.verify_every, verdict.settle, verdict.confirm) == (every, settle, confirm)
        assert verdict.checks_by_track is (every > 1 or settle > 0)
        assert (base.verdict.verify_every, base.verdict.settle, base.verdict.confirm) == (1, 0.0, 4)
    finally:
        worker.shutdown(timeout=1.0)


@pytest.mark.parametrize(
    ("max_wait", "waited", "kept"),
    [
        (2.0, [], []),
        (2.0, [0.1, 1.9], [0, 1]),
        (2.0, [0.1, 3.0, 11.0, 0.5], [0, 3]),  # an overloaded worker judges fresh frames only
        (0.0, [0.1, 30.0], [0, 1]),  # 0: never dropped for waiting
    ],
)
def test_frames_that_waited_too_long_are_dropped_and_counted(tmp_path, max_wait, waited, kept) -> None:
    worker = Worker.from_config(live_config(tmp_path, max_wait=max_wait))
    try:
        image = np.zeros((8, 8, 3), np.uint8)
        batch = [Frame("s0", i, i / 2, image) for i in range(len(waited))]
        now = time.monotonic()
        for frame, w in zip(batch, waited, strict=True):
            worker._arrivals[(frame.stream, frame.index)] = now - w
        fresh = worker._fresh(batch)
        assert [f.index for f in fresh] == kept
        worker._publish_drops()
        assert worker.frames_dropped() == len(waited) - len(kept)
        assert worker.dropped["s0"] == len(waited) - len(kept)
        # A dropped frame's arrival time goes with it; the kept ones wait for their verdicts.
        assert sorted(i for _, i in worker._arrivals) == kept
    finally:
        worker.shutdown(timeout=1.0)


def test_a_negative_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="max_wait"):
        dataclasses.replace(Config.load().daemon, max_wait=-1.0)
