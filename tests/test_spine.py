"""The feeding side of the spine: bounded queues with named overflow policies, micro-batches."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from pipeline.config import Config
from pipeline.infer.verifier import MarkVerifier
from pipeline.spine import _END, FrameQueue, Spine, collect_batch, two_in_flight, waves
from pipeline.types import Frame
from pipeline.verdict import MarkSample

IMG = np.zeros((4, 4, 3), np.uint8)


def frame(stream: str, i: int) -> Frame:
    return Frame(stream, i, i / 30, IMG)


def test_drop_oldest_counts_per_stream_and_keeps_newest():
    q = FrameQueue(3, "drop_oldest")
    for i in range(5):
        q.put(frame("a", i))
    q.put(frame("b", 0))
    assert q.dropped == {"a": 3}
    got = [q.get(timeout=0.1) for _ in range(3)]
    assert [(f.stream, f.index) for f in got] == [("a", 3), ("a", 4), ("b", 0)]


def test_end_markers_are_never_dropped():
    q = FrameQueue(2, "drop_oldest")
    q.put(_END)
    q.put(frame("a", 0))
    q.put(frame("a", 1))  # full: a frame is dropped, never the marker
    items = [q.get(timeout=0.1) for _ in range(2)]
    assert _END in items and q.dropped["a"] == 1


def test_block_policy_waits_instead_of_dropping():
    q = FrameQueue(1, "block")
    q.put(frame("a", 0))
    t = threading.Thread(target=q.put, args=(frame("a", 1),))
    t.start()
    time.sleep(0.2)
    assert t.is_alive()  # blocked: replay never skips a frame
    assert q.get(timeout=1).index == 0
    t.join(timeout=2)
    assert q.get(timeout=1).index == 1 and not q.dropped


def test_unknown_policy():
    with pytest.raises(ValueError, match="overflow policy"):
        FrameQueue(1, "drop_newest_maybe")


@pytest.mark.parametrize(("queued", "size", "expect"), [(0, 4, 0), (3, 4, 3), (10, 4, 4)])
def test_collect_batch_sizes(queued, size, expect):
    q = FrameQueue(32)
    for i in range(queued):
        q.put(frame("s", i))
    batch, ended = collect_batch(q, size, deadline_ms=20, idle=0.05)
    assert len(batch) == expect and ended == 0


def test_collect_batch_sorts_by_stream_and_time_and_counts_ends():
    q = FrameQueue(32)
    for f in (frame("b", 2), frame("a", 5), frame("b", 1)):
        q.put(f)
    q.put(_END)
    batch, ended = collect_batch(q, 8, deadline_ms=20, idle=0.05)
    assert [(f.stream, f.index) for f in batch] == [("a", 5), ("b", 1), ("b", 2)] and ended == 1


@pytest.mark.parametrize(
    ("streams", "expected"),
    [
        ([], []),
        (["a"], [[0]]),
        (["a", "b", "c"], [[0, 1, 2]]),
        (["a", "a", "a"], [[0], [1], [2]]),
        (["a", "a", "b", "a", "b"], [[0, 2], [1, 4], [3]]),
    ],
)
def test_waves_hold_one_frame_per_stream_in_order(streams, expected):
    assert waves([frame(s, i) for i, s in enumerate(streams)]) == expected


class _StagingLog:
    """Stands in for ``Spine`` in the loop's bookkeeping: records each batch it stages."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log

    def stage(self, batch: list[Frame]) -> list[Frame]:
        self.log.append(("stage", batch[0].index))
        return batch


@pytest.mark.parametrize(
    ("batches", "idle", "expected"),
    [
        ([], False, []),
        ([[]], False, []),  # nothing arrived in time: nothing staged
        (
            [[frame("a", 0)], [], [frame("a", 1)], [frame("a", 2)]],
            False,
            # the next batch is staged before the one before it is concluded (an empty one
            # concludes it at once), and batches are concluded in order
            [("stage", 0), ("conclude", 0), ("stage", 1), ("stage", 2), ("conclude", 1), ("conclude", 2)],
        ),
        (
            [[frame("a", 0)], [frame("a", 1)]],
            True,
            # live work with no frame waiting: each staged batch is concluded before waiting again
            [("stage", 0), ("conclude", 0), ("stage", 1), ("conclude", 1)],
        ),
    ],
)
def test_two_in_flight_stages_ahead_and_concludes_in_order(batches, idle, expected):
    log: list[tuple[str, int]] = []
    feed = iter(batches)
    two_in_flight(
        _StagingLog(log),  # type: ignore[arg-type]
        lambda: next(feed, None),
        lambda staged: log.append(("conclude", staged[0].index)),
        idle=lambda: idle,
    )
    assert log == expected


def _sample(t: float, sims: dict[str, float], refs: dict[str, int]) -> MarkSample:
    return MarkSample(
        "s",
        int(t * 30),
        t,
        np.array([40, 40, 120, 100], np.float32),
        0.9,
        max(sims),
        max(sims.values()),
        brand_sims=sims,
        auth_sims=sims,
        brand_refs=refs,
        thresholds=dict.fromkeys(sims, 0.7),
    )


@pytest.mark.parametrize(("recall", "checked"), [(-1.0, {"x"}), (0.9, {"x", "acme"})])
def test_the_spine_checks_the_brands_a_track_recalls(recall: float, checked: set[str]) -> None:
    """A brand the verifier found the track to be (``verdict.recall_brand``) is checked on its
    next mark too, beside the brands identity ranks nearest then; off, only those."""
    cfg = Config.load()
    cfg = dataclasses.replace(
        cfg,
        verdict=dataclasses.replace(cfg.verdict, recall_brand=recall, verify_every=1, settle=0.0, verified_samples=0),
        verifier=dataclasses.replace(cfg.verifier, learned=False, hands=False, top_brands=3, brand_floor=0.4),
    )
    image = np.full((64, 64, 3), 250, np.uint8)
    image[16:48, 20:44] = 20
    with MarkVerifier(lambda ref: image, cfg.verifier) as verifier:
        spine = Spine(cfg, None, None, None, verifier=verifier)  # type: ignore[arg-type]
        frame = Frame("s", 0, 0.0, np.full((240, 320, 3), 128, np.uint8))
        first = _sample(0.0, {"acme": 0.5}, {"acme": 1})
        # The verifier found the first mark to be acme's, surely.
        spine.stream("s").update(0.0, [dataclasses.replace(first, verified={"acme": 0.1}, same_brand={"acme": 0.99})])
        later = _sample(0.5, {"x": 0.6}, {"x": 2})  # identity now ranks only x near
        (found,) = spine.verify([dataclasses.replace(frame, index=15, t=0.5)], [[later]])
    assert set(found[0].same_brand) == checked
