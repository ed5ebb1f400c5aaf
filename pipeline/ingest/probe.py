"""Reading a video's duration, size and frame rate before decoding it."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from pipeline.ingest.ffmpeg_bin import ffmpeg_exe, ffprobe_exe


@dataclass(frozen=True)
class VideoInfo:
    """What a container says of its first video stream (None where it does not say)."""

    duration: float | None
    width: int | None
    height: int | None
    fps: float | None


def probe(path: str | Path) -> VideoInfo:
    """Probe with ffprobe where installed, else from ffmpeg's own input summary."""
    exe = ffprobe_exe()
    if exe:
        out = subprocess.run(
            [
                exe,
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height,r_frame_rate:format=duration",
                "-of",
                "json",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode == 0:
            data = json.loads(out.stdout or "{}")
            s = (data.get("streams") or [{}])[0]
            dur = data.get("format", {}).get("duration")
            rate = s.get("r_frame_rate")
            return VideoInfo(
                float(dur) if dur not in (None, "N/A") else None,
                s.get("width"),
                s.get("height"),
                float(Fraction(rate)) if rate and rate != "0/0" else None,
            )
    text = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=30
    ).stderr
    dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    size = re.search(r"Video: .*?(\d{2,5})x(\d{2,5})", text)
    fps = re.search(r"([\d.]+) fps", text)
    return VideoInfo(
        int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else None,
        int(size.group(1)) if size else None,
        int(size.group(2)) if size else None,
        float(fps.group(1)) if fps else None,
    )
