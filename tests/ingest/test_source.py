from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest

from pipeline.ingest.source import FFmpegSource, IngestError, Sampling, read_frames
from tests.ingest.conftest import make_video


def ffprobe_frames(path, skip=None):
    """(presentation time, key frame) of every frame ffprobe decodes (``skip``: its ``-skip_frame``)."""
    exe = shutil.which("ffprobe")
    if exe is None:
        pytest.skip("ffprobe not installed")
    args = [exe, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time,key_frame", "-of", "json"]
    if skip:
        args[1:1] = ["-skip_frame", skip]
    out = json.loads(subprocess.run([*args, str(path)], capture_output=True, text=True, check=True).stdout)
    return [(float(f["pts_time"]), int(f["key_frame"])) for f in out["frames"]]


def first_of_each_slot(indices, fps, rate):
    """The first of ``indices`` (frame numbers at ``fps``) in every 1/rate slot of media time."""
    chosen, last_slot = [], None
    for i in indices:
        slot = math.floor(i / fps * rate + 1e-6)
        if slot != last_slot:
            chosen.append(i)
            last_slot = slot
    return chosen


@pytest.mark.parametrize("fixture", ["clip_30fps", "clip_25fps"])
@pytest.mark.parametrize(
    "sample, skip_nonref",
    [("all", True), ("keyframes", True), ("2", True), ("2", False), ("1", True), ("7.5", True), ("7.5", False)],
)
def test_index_and_time_match_ffprobe(request, fixture, sample, skip_nonref):
    path = request.getfixturevalue(fixture)
    probed = ffprobe_frames(path)
    fps = 30 if fixture == "clip_30fps" else 25
    times = [t for t, _ in probed]
    sampling = Sampling.from_arg(sample, skip_nonref)
    frames = read_frames(path, sampling)
    assert frames, "no frames decoded"
    for f in frames:
        # Every decoded frame is the source frame whose presentation time ffprobe reports.
        assert f.t == pytest.approx(times[f.index] - times[0], abs=1e-3)
        assert f.stream == path.stem
    idx = [f.index for f in frames]
    if sample == "all":
        assert idx == list(range(len(probed)))
    elif sample == "keyframes":
        assert idx == [i for i, (_, key) in enumerate(probed) if key]
    elif sampling.decoder_skip() == "noref":
        # The first reference frame (those ffprobe decodes with -skip_frame noref) of each slot.
        refs = [round((t - times[0]) * fps) for t, _ in ffprobe_frames(path, "noref")]
        assert len(refs) < len(probed), "the fixture should hold non-reference frames"
        assert idx == first_of_each_slot(refs, fps, float(sample))
    else:
        # The first frame of each 1/rate slot of media time.
        assert idx == first_of_each_slot(range(len(probed)), fps, float(sample))


@pytest.mark.parametrize(
    "sampling, expected",
    [
        (Sampling("all"), None),
        (Sampling("keyframes"), "nokey"),
        (Sampling("fps", 2.0), "noref"),
        (Sampling("fps", 5.0), "noref"),
        (Sampling("fps", 7.5), None),
        (Sampling("fps", 2.0, skip_nonref=False), None),
        (Sampling("keyframes", skip_nonref=False), "nokey"),
    ],
)
def test_decoder_skip(sampling, expected):
    assert sampling.decoder_skip() == expected


def test_frames_are_rgb_arrays(clip_30fps):
    frames = read_frames(clip_30fps, Sampling("keyframes"))
    assert frames[0].image.shape == (180, 320, 3) and frames[0].image.dtype == np.uint8


def _write(path, data):
    path.write_bytes(data)
    return path


def _truncated(tmp_path, clip):
    data = clip.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def _no_moov(tmp_path, clip):
    path = tmp_path / "nomoov.mp4"
    subprocess.run(["cp", str(clip), str(path)], check=True)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"moov", b"xxxx"))
    return path


def _unsupported_codec(tmp_path, _clip):
    avi = make_video(tmp_path / "mjpeg.avi", seconds=1, codec="mjpeg")
    data = avi.read_bytes().replace(b"MJPG", b"ZZZZ")
    path = tmp_path / "unknown_codec.avi"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, clip: tmp / "missing.mp4", "file not found"),
        (lambda tmp, clip: _write(tmp / "empty.mp4", b""), "not a readable video"),
        (lambda tmp, clip: _write(tmp / "notes.mp4", b"just text, no video\n" * 50), "not a readable video"),
        (_truncated, "truncated or corrupt"),
        (_no_moov, "not a readable video"),
        (_unsupported_codec, "codec"),
    ],
    ids=["missing", "empty", "not-a-video", "truncated", "corrupt", "unsupported-codec"],
)
def test_bad_inputs_give_one_clear_error(tmp_path, clip_30fps, make, message):
    path = make(tmp_path, clip_30fps)
    with pytest.raises(IngestError, match=message) as err:
        read_frames(path, Sampling("fps", 2))
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_audio_only_file_has_no_video_stream(tmp_path):
    from pipeline.ingest.ffmpeg_bin import ffmpeg_exe

    path = tmp_path / "tone.m4a"
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(path)], check=True
    )
    with pytest.raises(IngestError, match="no video stream"):
        read_frames(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keyframes", Sampling("keyframes")),
        ("2", Sampling("fps", 2.0)),
        ("ALL", Sampling("all")),
        (0.5, Sampling("fps", 0.5)),
    ],
)
def test_sampling_from_arg(text, expected):
    assert Sampling.from_arg(text) == expected


@pytest.mark.parametrize("bad", ["fast", "0", "-1", "nan"])
def test_sampling_rejects(bad):
    with pytest.raises(ValueError):
        Sampling.from_arg(bad)


def test_sampling_rejects_negative_decoder_threads():
    with pytest.raises(ValueError, match="decoder threads"):
        Sampling.from_arg("2", decoder_threads=-1)


def _input_option(command: list[str], name: str) -> str | None:
    """The value of an ffmpeg input option (before ``-i``); None where it is not given."""
    head = command[: command.index("-i")]
    return head[head.index(name) + 1] if name in head else None


@pytest.mark.parametrize(
    ("threads", "input_args", "expected"),
    [
        (1, None, "1"),
        (3, None, "3"),
        (0, None, None),  # ffmpeg's own choice
        (1, {"threads": "2"}, "2"),  # an explicit input option wins
    ],
)
def test_decoder_threads_reach_the_decoder(threads, input_args, expected):
    src = FFmpegSource("clip.mp4", sampling=Sampling.from_arg("2", decoder_threads=threads), input_args=input_args)
    assert _input_option(src.command(), "-threads") == expected


@pytest.mark.parametrize("sample", ["keyframes", "2", "all"])
def test_decoder_threads_change_no_frame(clip_30fps, sample):
    one = read_frames(clip_30fps, Sampling.from_arg(sample, decoder_threads=1))
    auto = read_frames(clip_30fps, Sampling.from_arg(sample, decoder_threads=0))
    assert [(f.index, f.t) for f in one] == [(f.index, f.t) for f in auto] and one
    assert all(np.array_equal(a.image, b.image) for a, b in zip(one, auto, strict=True))


def test_closing_early_stops_ffmpeg(clip_30fps):
    src = FFmpegSource(clip_30fps, sampling=Sampling("all"))
    with src:
        first = next(iter(src))
        proc = src._proc
    assert first.index == 0
    assert proc is not None and proc.poll() is not None


@pytest.mark.parametrize("size", ["320x180", "321x181"])
def test_rgb_matches_ffmpeg_own_conversion(tmp_path, size):
    """Frames travel as planar 4:2:0 and become RGB in OpenCV: same picture as ffmpeg's RGB."""
    from pipeline.ingest.ffmpeg_bin import ffmpeg_exe

    w, h = (int(v) for v in size.split("x"))
    path = tmp_path / "odd.mkv"
    make_video(path, seconds=1, fps=10, codec="ffv1", extra=("-vf", f"scale={w}:{h}"))
    frames = read_frames(path, Sampling("all"))
    raw = subprocess.run(
        [
            ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
    assert frames[0].image.shape == (h, w, 3)
    assert np.abs(frames[0].image.astype(int) - ref).mean() < 6
