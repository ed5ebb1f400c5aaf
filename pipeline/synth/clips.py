"""Labelled livestream clips and galleries, in the layout of ``formats.md`` sections 1 and 2.

A clip is a seller showing products to the camera: products carrying marks come into view,
drift, turn and tilt, are held by a hand, and leave again. Each object is authentic, a
counterfeit (one of the counterfeit families), or the mark of a brand not in the gallery.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.ingest.ffmpeg_bin import ffmpeg_exe
from pipeline.synth.counterfeit import FAMILIES, make_counterfeit
from pipeline.synth.marks import Mark
from pipeline.synth.render import (
    MARK,
    Pose,
    SceneItem,
    busy_background,
    gallery_image,
    render_frame,
)

LABELS_FORMAT = "fakewatch-labels/1"


@dataclass(frozen=True)
class ClipObject:
    """One product in a clip: what it shows and when."""

    brand: str
    authentic: bool
    family: str | None  # counterfeit family, None for authentic marks
    item: SceneItem
    start: int  # first frame on screen
    end: int  # frame after the last
    path: tuple[Pose, Pose]  # pose at start and at end, interpolated with a wobble
    hand: float  # how far a hand reaches over the mark (0 = none)
    wobble: float

    def pose_at(self, frame: int) -> Pose:
        a, b = self.path
        u = (frame - self.start) / max(self.end - self.start - 1, 1)
        w = np.sin(u * np.pi * 3 + self.wobble) * 0.5
        mix = lambda x, y: x + (y - x) * u  # noqa: E731
        return Pose(
            cx=mix(a.cx, b.cx) + w * a.size * 0.2,
            cy=mix(a.cy, b.cy) + w * a.size * 0.1,
            size=mix(a.size, b.size),
            angle=mix(a.angle, b.angle) + w * 4,
            tilt=tuple(mix(x, y) for x, y in zip(a.tilt, b.tilt, strict=True)),
        )


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip deterministically."""

    name: str
    fps: int
    frames: int
    width: int
    height: int
    seed: int
    objects: tuple[ClipObject, ...]


def plan_clip(
    name: str,
    rng: np.random.Generator,
    enrolled: Sequence[Mark],
    unenrolled: Sequence[Mark],
    seconds: float = 20.0,
    fps: int = 30,
    size: tuple[int, int] = (1280, 720),
    objects: int | None = None,
    fake_rate: float = 0.45,
    unenrolled_rate: float = 0.15,
    min_mark: float = 60.0,
    max_mark: float = 220.0,
) -> ClipSpec:
    """Draw a clip's objects at random: brands, authenticity, timing and motion."""
    count = objects if objects is not None else int(rng.integers(1, 4))
    script: list[tuple[Mark, str | None]] = []
    for _ in range(count):
        roll = rng.random()
        if roll < unenrolled_rate and unenrolled:
            mark = unenrolled[int(rng.integers(len(unenrolled)))]
            family = None if rng.random() < 0.5 else str(rng.choice(FAMILIES))
        else:
            mark = enrolled[int(rng.integers(len(enrolled)))]
            family = str(rng.choice(FAMILIES)) if roll <= unenrolled_rate + fake_rate else None
        script.append((mark, family))
    # A splice borrows half of another mark. Borrowed from an enrolled brand, it is as much a fake
    # of that brand as of its own (half of each), and no verdict can tell which one the label
    # names: it borrows from marks outside the gallery, where there are any.
    partners = unenrolled or enrolled
    return plan_scripted_clip(name, rng, script, partners, seconds, fps, size, min_mark, max_mark)


def plan_scripted_clip(
    name: str,
    rng: np.random.Generator,
    script: Sequence[tuple[Mark, str | None]],
    pool: Sequence[Mark],
    seconds: float = 20.0,
    fps: int = 30,
    size: tuple[int, int] = (1280, 720),
    min_mark: float = 60.0,
    max_mark: float = 220.0,
) -> ClipSpec:
    """A clip showing the given marks one after another.

    Args:
        script: per object, its brand's mark and a counterfeit family (None = authentic).
        pool: marks a spliced counterfeit may borrow from (best outside the gallery: a splice
            with half of an enrolled brand's mark imitates that brand just as much).
    """
    width, height = size
    n_frames = round(seconds * fps)
    count = len(script)
    objs: list[ClipObject] = []
    for k, (mark, wanted) in enumerate(script):
        mask, family = mark.mask, None
        if wanted is not None:
            # A family that cannot fake this mark (mirroring a symmetric one) gives way to another.
            for fam in [wanted, *[f for f in FAMILIES if f != wanted]]:
                other = pool[int(rng.integers(len(pool)))].mask
                fake = make_counterfeit(mark.mask, fam, rng, other=other)
                if fake is not None:
                    mask, family = fake, fam
                    break
        # Objects take turns on screen, with some overlap, as a seller shows one product after another.
        slot = n_frames / count
        length = int(rng.uniform(0.55, 0.95) * slot + rng.uniform(0, 0.3) * slot)
        start = int(k * slot + rng.uniform(0, max(slot - length, 1)))
        end = min(n_frames, start + max(length, fps * 3))
        msize = float(rng.uniform(min_mark, max_mark))
        a = Pose.random(rng, width, height, msize)
        b = Pose.random(rng, width, height, msize * rng.uniform(0.8, 1.25))
        b = Pose(a.cx + (b.cx - a.cx) * 0.4, a.cy + (b.cy - a.cy) * 0.4, b.size, b.angle, b.tilt)
        objs.append(
            ClipObject(
                brand=mark.slug,
                authentic=family is None,
                family=family,
                item=SceneItem.make(rng, mask, mark.colour),
                start=start,
                end=end,
                path=(a, b),
                hand=float(rng.uniform(0.05, 0.25)) if rng.random() < 0.3 else 0.0,
                wobble=float(rng.uniform(0, 6.28)),
            )
        )
    return ClipSpec(name, fps, n_frames, width, height, int(rng.integers(2**31)), tuple(objs))


def render_clip(spec: ClipSpec, out_dir: str | Path, gop_seconds: float = 2.0, crf: int = 23) -> Path:
    """Render a clip to ``OUT/NAME.mp4`` (H.264) and its labels to ``OUT/NAME.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = out / f"{spec.name}.mp4"
    tmp_video = out / f".{spec.name}.tmp.mp4"
    rng = np.random.default_rng(spec.seed)
    background = busy_background(rng, spec.height, spec.width)
    cmd = [
        ffmpeg_exe(),
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{spec.width}x{spec.height}",
        "-r",
        str(spec.fps),
        "-i",
        "pipe:",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(round(gop_seconds * spec.fps)),
        "-keyint_min",
        str(round(gop_seconds * spec.fps)),
        "-sc_threshold",
        "0",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(tmp_video),
    ]
    boxes: dict[int, list[list[float]]] = {i: [] for i in range(len(spec.objects))}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for f in range(spec.frames):
            live = [i for i, o in enumerate(spec.objects) if o.start <= f < o.end]
            items = [spec.objects[i].item for i in live]
            poses = [spec.objects[i].pose_at(f) for i in live]
            hands = [spec.objects[i].hand for i in live]
            frame_rng = np.random.default_rng([spec.seed, f // 15])
            frame, anns = render_frame(background, items, poses, frame_rng, hands=hands, effects=0.0)
            frame = _camera(frame, f)
            for a in anns:
                if a.category == MARK:
                    x1, y1, x2, y2 = (round(float(v)) for v in a.box)
                    boxes[live[a.item]].append([f, x1, y1, x2, y2])
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed while encoding {video}")
    except BaseException:
        proc.kill()
        tmp_video.unlink(missing_ok=True)
        raise
    tmp_video.replace(video)
    labels = {
        "format": LABELS_FORMAT,
        "video": video.name,
        "fps": spec.fps,
        "frames": spec.frames,
        "size": [spec.width, spec.height],
        "objects": [
            {
                "id": i + 1,
                "brand": o.brand,
                "authentic": o.authentic,
                "boxes": boxes[i],
                **({"family": o.family} if o.family else {}),
            }
            for i, o in enumerate(spec.objects)
            if boxes[i]
        ],
    }
    (out / f"{spec.name}.json").write_text(json.dumps(labels) + "\n")
    return video


def _camera(frame: np.ndarray, index: int) -> np.ndarray:
    """Slowly drifting exposure and sensor noise (a cheap per-frame camera)."""
    gain = 1.0 + 0.12 * np.sin(index / 45.0)
    img = cv2.convertScaleAbs(frame, alpha=gain, beta=0)
    if index % 2 == 0:
        img = cv2.GaussianBlur(img, (3, 3), 0.6)
    return img


def write_gallery(marks: Sequence[Mark], out_dir: str | Path, images: int = 1) -> Path:
    """Write a gallery folder (formats.md section 1) with ``images`` reference images per brand."""
    out = Path(out_dir)
    for mark in marks:
        folder = out / mark.slug
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(images):
            colour = mark.colour if k == 0 else ((20, 20, 20) if k % 2 else (240, 240, 240))
            img = gallery_image(mark.mask, colour)
            cv2.imwrite(str(folder / f"ref_{k}.png"), img[:, :, ::-1])
        (folder / "brand.json").write_text(json.dumps({"title": mark.title}) + "\n")
    return out
