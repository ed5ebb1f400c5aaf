"""Locating the ffmpeg and ffprobe programs."""

from __future__ import annotations

import functools
import shutil


class FFmpegNotFound(RuntimeError):
    """Neither a system ffmpeg nor the one bundled with imageio-ffmpeg is available."""


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg on PATH when there is one, else the binary bundled by imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise FFmpegNotFound("ffmpeg not found: install ffmpeg or the imageio-ffmpeg package") from exc


@functools.cache
def ffprobe_exe() -> str | None:
    """The ffprobe on PATH, or None (imageio-ffmpeg bundles no ffprobe)."""
    return shutil.which("ffprobe")
