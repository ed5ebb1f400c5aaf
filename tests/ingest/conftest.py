"""Small videos made with the real ffmpeg for ingest tests."""

from __future__ import annotations

import functools
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.ingest.ffmpeg_bin import ffmpeg_exe


def make_video(
    path: Path,
    seconds: float = 4.0,
    fps: int = 30,
    gop: int = 30,
    size: str = "320x180",
    codec: str = "libx264",
    bframes: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """Encode ffmpeg's test pattern; ``extra`` output options go before the path (filters, muxer)."""
    cmd = [
        ffmpeg_exe(),
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={fps}",
        "-t",
        str(seconds),
        "-c:v",
        codec,
        "-pix_fmt",
        "yuv420p",
    ]
    if codec == "libx264":
        cmd += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
        if not bframes:
            cmd += ["-bf", "0"]
    if path.suffix == ".mp4":
        cmd += ["-movflags", "+faststart"]  # index first, as streaming recorders write it
    subprocess.run([*cmd, *extra, str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def clip_30fps(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "clip30.mp4", seconds=4, fps=30, gop=30)


@pytest.fixture(scope="session")
def clip_25fps(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "clip25.mkv", seconds=3, fps=25, gop=50)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A folder served over HTTP on loopback: (folder, base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
