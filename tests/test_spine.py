"""The feeding side of the spine: bounded queues with named overflow policies, micro-batches."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from pipeline.boxes import cut_crops
from pipeline.config import Config
from pipeline.gallery.index import GalleryIndex
from pipeline.infer.embedder import OnnxEmbedder
from pipeline.infer.models import MODELS_DIR
from pipeline.infer.verifier import MarkVerifier
from pipeline.spine import _END, FrameQueue, Spine, collect_batch, two_in_flight, waves
from pipeline.synth.clips import write_gallery
from pipeline.synth.marks import MarkLibrary
from pipeline.types import Frame
from pipeline.verdict import MarkSample
from tests.infer.test_verifier import scene

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


@pytest.mark.parametrize(("puts", "size", "expect"), [(0, 2, {}), (2, 2, {}), (5, 2, {"a": 3})])
def test_dropped_frames_are_taken_once_and_heard_of(puts, size, expect):
    heard: list[int] = []
    q = FrameQueue(size, "drop_oldest", on_drop=lambda f: heard.append(f.index))
    for i in range(puts):
        q.put(frame("a", i))
    assert q.take_dropped() == expect
    assert q.take_dropped() == {}  # counted once: the worker adds them to its totals
    assert heard == list(range(sum(expect.values())))


def test_a_frame_the_consumer_drops_counts_with_the_queues_own():
    heard: list[tuple[str, int]] = []
    q = FrameQueue(1, "drop_oldest", on_drop=lambda f: heard.append((f.stream, f.index)))
    q.put(frame("a", 0))
    q.put(frame("a", 1))  # full: frame 0 goes
    q.drop(q.get(timeout=0.1))  # taken, but too late to be of use
    assert q.dropped == {"a": 2} and heard == [("a", 0), ("a", 1)]


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


@pytest.fixture(scope="module")
def enrolled_spine(tmp_path_factory: pytest.TempPathFactory, library: MarkLibrary) -> Iterator[tuple[Spine, list]]:
    """A spine with the shipped embedder and a gallery of the first 40 sample marks (the rest unenrolled)."""
    marks = list(library)
    tmp = tmp_path_factory.mktemp("halves")
    embedder = OnnxEmbedder(MODELS_DIR / "embedder.onnx")
    index = GalleryIndex.build(
        write_gallery(marks[:40], tmp / "gallery"), tmp / "index", embedder, embedder.version, views=3
    )
    cfg = Config.load()
    cfg = dataclasses.replace(cfg, verifier=dataclasses.replace(cfg.verifier, half_brands=0.4))
    with index:
        yield Spine(cfg, None, embedder, index), marks  # type: ignore[arg-type]


def _spliced(marks: list, kept: str, borrowed: str) -> np.ndarray:
    """``kept``'s mark with its right half replaced by the right half of ``borrowed``'s."""
    by_slug = {m.slug: m for m in marks}
    mask = by_slug[kept].mask.copy()
    h, w = mask.shape
    mask[:, w // 2 :] = cv2.resize(by_slug[borrowed].mask, (w, h))[:, w // 2 :]
    return mask


@pytest.mark.parametrize(
    ("kept", "borrowed", "seed", "half_floor", "found"),
    [
        ("octoprint", "turbosquid", 61, 0.4, True),  # a splice: its brand is not among the whole crop's nearest
        ("octoprint", "turbosquid", 61, -1.0, False),  # looking by halves is off
        ("octoprint", "turbosquid", 61, 0.95, False),  # no half is that near any brand
    ],
)
def test_half_brands_find_the_brand_a_splice_keeps_half_of(
    enrolled_spine: tuple[Spine, list], kept: str, borrowed: str, seed: int, half_floor: float, found: bool
) -> None:
    spine, marks = enrolled_spine
    colour = next(m.colour for m in marks if m.slug == kept)
    image, box = scene(_spliced(marks, kept, borrowed), colour, seed=seed)
    crop = cut_crops(image, box[None], spine.embedder.crop_size)
    whole = spine.gallery.search(spine.embedder.embed(crop).identity, 24)
    near = [float(sim) for sim, b in zip(whole.similarity[0], whole.brand[0], strict=True) if b == kept]
    # The borrowed half pulls the whole crop away from its brand: too far to be checked against it.
    assert max(near, default=0.0) < spine.config.verifier.brand_floor
    sample = MarkSample("s", 0, 0.0, box, 0.9, "", 0.0, crop=crop[0])
    old = spine.config
    spine.config = dataclasses.replace(old, verifier=dataclasses.replace(old.verifier, half_brands=half_floor))
    try:
        (brands,) = spine.half_brands([image], [sample])
    finally:
        spine.config = old
    assert (kept in brands) == found
    assert all(sim >= half_floor for sim in brands.values())


def test_half_brands_of_no_marks(enrolled_spine: tuple[Spine, list]) -> None:
    assert enrolled_spine[0].half_brands([], []) == []


def test_a_brand_beyond_the_neighbours_gets_its_gallery_evidence(enrolled_spine: tuple[Spine, list]) -> None:
    """A brand checked beyond a mark's neighbours (found by halves, or recalled) is weighed as they
    are: its authenticity similarity, nearest reference and threshold come from the gallery."""
    spine, marks = enrolled_spine
    vector = np.zeros(128, np.float32)
    vector[0] = 1.0
    sample = dataclasses.replace(_sample(0.0, {"x": 0.6}, {"x": 2}), authenticity=vector)
    brand = marks[0].slug
    added = spine._with_brands(sample, {brand: 0.45, "x": 0.1})
    assert added.brand_sims == {"x": 0.6, brand: 0.45}  # a neighbour keeps its own figure
    sim, ref = spine.gallery.authenticity(vector, brand)
    assert added.auth_sims[brand] == sim and added.brand_refs[brand] == ref
    assert added.thresholds[brand] == spine.gallery.threshold(brand)
    # Without the mark's authenticity vector nothing can be weighed for it.
    assert spine._with_brands(_sample(0.0, {"x": 0.6}, {"x": 2}), {brand: 0.45}).brand_sims == {"x": 0.6}


def _recalling_spine(cfg: Config, verifier: MarkVerifier, seen: list[tuple[int, dict[str, float]]]) -> Spine:
    """A spine whose frames each hold one mark at (40, 40, 120, 100): in frame 0 identity ranks only
    acme near, later only x; what each frame's mark was checked against goes to ``seen``."""
    spine = Spine(cfg, None, None, None, verifier=verifier)  # type: ignore[arg-type]

    def samples(frames: list[Frame]) -> list[list[MarkSample]]:
        return [
            [_sample(f.t, {"acme": 0.5}, {"acme": 1}) if f.index == 0 else _sample(f.t, {"x": 0.6}, {"x": 2})]
            for f in frames
        ]

    spine.samples = samples  # type: ignore[method-assign]
    spine.observer = lambda frame, marks: seen.append((frame.index, dict(marks[0].same_brand)))
    return spine


@pytest.mark.parametrize("batches", [[[0, 1, 2, 3]], [[0, 1], [2, 3]], [[0], [1, 2, 3]]])
def test_checks_do_not_depend_on_how_frames_were_batched(batches: list[list[int]]) -> None:
    """A track that finds its brand in frame 0 recalls it in frames 1-3. Staged in one batch with
    frame 0, their checks start before frame 0's verdict exists; ``conclude`` checks the recalled
    brand late, so each frame is checked against what it would be checked against alone."""
    cfg = Config.load()
    cfg = dataclasses.replace(
        cfg,
        verdict=dataclasses.replace(cfg.verdict, recall_brand=0.9, verify_every=1, settle=0.0, verified_samples=0),
        verifier=dataclasses.replace(cfg.verifier, learned=False, hands=False, half_brands=-1.0),
    )
    image = np.full((240, 320, 3), 230, np.uint8)
    image[50:90, 50:110] = 20  # the mark, inside the samples' box
    image[50:70, 80:110] = 230  # notched, so its reference aligns one way only
    reference = np.full((128, 128, 3), 230, np.uint8)
    reference[24:104, 4:124] = 20
    reference[24:64, 64:124] = 230
    other = np.full((128, 128, 3), 230, np.uint8)
    cv2.circle(other, (64, 64), 40, (20, 20, 20), 6)
    frames = [Frame("s", i, i / 2, image) for i in range(4)]
    alone: list[tuple[int, dict[str, float]]] = []
    batched: list[tuple[int, dict[str, float]]] = []
    with MarkVerifier(lambda ref: reference if ref == 1 else other, cfg.verifier) as verifier:
        one = _recalling_spine(cfg, verifier, alone)
        for f in frames:
            one.conclude(one.stage([f]))
        many = _recalling_spine(cfg, verifier, batched)
        staged = [many.stage([frames[i] for i in batch]) for batch in batches]  # all staged first
        for s in staged:
            many.conclude(s)
    assert alone[0][1]["acme"] >= 0.9  # frame 0 found to be acme's mark...
    assert all("acme" in checked for _, checked in alone[1:])  # ...so acme is checked again later
    assert batched == alone
