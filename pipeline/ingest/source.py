"""Decoding frames with ffmpeg: one process per source, frames read from its pipe.

ffmpeg's ``showinfo`` filter reports each output frame's presentation timestamp on stderr just
before the frame's bytes reach stdout, so every frame carries its exact presentation index and
media time under every sampling mode (all frames, a target rate, keyframes only).
"""

from __future__ import annotations

import math
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

import cv2
import ffmpeg
import numpy as np

from pipeline.ingest.ffmpeg_bin import ffmpeg_exe
from pipeline.types import Frame


class IngestError(RuntimeError):
    """A source could not be decoded; the message names the source and says why."""


class Source(Protocol):
    """Anything that yields a stream's frames in presentation order."""

    stream: str

    def __iter__(self) -> Iterator[Frame]: ...


# Rate sampling at or below this many frames per second decodes reference frames only. Encoders
# leave at most a few non-reference frames in a row (B-frames: 1-3 at 24-60 fps, 0.1 s at most),
# so every slot of 0.2 s or longer still holds a reference frame to sample.
NONREF_MAX_RATE = 5.0


@dataclass(frozen=True)
class Sampling:
    """Which frames to decode: ``keyframes``, ``fps`` (at ``rate`` per second) or ``all``.

    ``skip_nonref``: at rates up to ``NONREF_MAX_RATE``, frames that no other frame refers to are
    not decoded at all, and each slot's sample is its first reference frame (at most a few frames
    after the slot starts; its index and time stay exact). On H.264 with B-frames this cuts
    decoding by a fifth to a third.

    ``decoder_threads``: threads of each ffmpeg decoder (0 = ffmpeg's choice, one per core and
    more). Sampled decoding leaves a frame-threaded decoder little to share out: one thread decodes
    as fast and spends a sixth less CPU, which goes to the models (and to the other streams).
    """

    mode: Literal["keyframes", "fps", "all"] = "fps"
    rate: float = 2.0
    skip_nonref: bool = True
    decoder_threads: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("keyframes", "fps", "all"):
            raise ValueError(f"unknown sampling mode {self.mode!r}")
        if self.mode == "fps" and not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"sampling rate must be a positive number, got {self.rate}")
        if self.decoder_threads < 0:
            raise ValueError(f"decoder threads must be 0 (ffmpeg's choice) or more, got {self.decoder_threads}")

    @classmethod
    def from_arg(cls, text: str | float, skip_nonref: bool = True, decoder_threads: int = 1) -> Sampling:
        """Parse ``keyframes``, ``all`` or a rate such as ``2`` or ``0.5``."""
        if isinstance(text, int | float):
            return cls("fps", float(text), skip_nonref, decoder_threads)
        t = str(text).strip().lower()
        if t in ("keyframes", "all"):
            return cls(t, skip_nonref=skip_nonref, decoder_threads=decoder_threads)  # type: ignore[arg-type]
        try:
            rate = float(t)
        except ValueError:
            rate = math.nan  # refused below, with the same message as a rate out of range
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"--sample must be 'keyframes', 'all' or frames per second, got {text!r}")
        return cls("fps", rate, skip_nonref, decoder_threads)

    def __str__(self) -> str:
        return f"{self.rate:g} fps" if self.mode == "fps" else self.mode

    def decoder_skip(self) -> str | None:
        """ffmpeg's ``skip_frame`` for this sampling: frames the decoder need not decode (None: all)."""
        if self.mode == "keyframes":
            return "nokey"
        if self.mode == "fps" and self.skip_nonref and self.rate <= NONREF_MAX_RATE:
            return "noref"
        return None

    def select_expression(self) -> str | None:
        """ffmpeg ``select`` expression for rate sampling (None for all frames or keyframes).

        Keeps the first decoded frame of every 1/rate slot of media time: the average rate is exact even
        where it does not divide the source rate (7.5 of 25 fps).
        """
        if self.mode != "fps":
            return None
        r = f"{self.rate:.9g}"
        return f"isnan(prev_selected_t)+gt(floor(t*{r}+1e-6),floor(prev_selected_t*{r}+1e-6))"


_FRAME_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:(\S+).*?\bs:(\d+)x(\d+)")
_CONFIG_RE = re.compile(r"config in time_base:\s*(\d+)/(\d+), frame_rate:\s*(\d+)/(\d+)")
_START_RE = re.compile(r"Duration: [^,]+, start: (-?[\d.]+)")
_LEVEL_RE = re.compile(r"\[(trace|debug|verbose|info|warning|error|fatal|panic)\]\s*")


@dataclass
class _Stderr:
    """What the stderr reader learnt, shared with the frame reader."""

    frames: queue.Queue[tuple[int, int, int] | None] = field(default_factory=lambda: queue.Queue(maxsize=256))
    time_base: Fraction | None = None
    frame_rate: Fraction | None = None
    start: float | None = None
    errors: list[str] = field(default_factory=list)


class FFmpegSource:
    """One ffmpeg process decoding one source into RGB frames.

    Use as a context manager; iterating yields ``Frame`` records. A failure raises
    ``IngestError`` naming the source, after every frame decoded before it was yielded.

    Args:
        url: a file path or a URL ffmpeg reads.
        stream: the stream id frames are tagged with.
        sampling: which frames to decode.
        input_args: extra ffmpeg input options (protocol whitelist, forced format, timeouts).
        realtime: read the input at its native rate (``-re``), as a live source would arrive.
    """

    def __init__(
        self,
        url: str | Path,
        stream: str | None = None,
        sampling: Sampling = Sampling(),
        input_args: dict[str, str] | None = None,
        realtime: bool = False,
    ) -> None:
        self.url = str(url)
        self.stream = stream or Path(self.url).stem
        self.sampling = sampling
        self.input_args = dict(input_args or {})
        self.realtime = realtime
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._info = _Stderr()

    def command(self) -> list[str]:
        """The ffmpeg command line for this source."""
        in_args: dict[str, str] = dict(self.input_args)
        if (skip := self.sampling.decoder_skip()) is not None:
            in_args["skip_frame"] = skip
        if self.sampling.decoder_threads:
            in_args.setdefault("threads", str(self.sampling.decoder_threads))
        if self.realtime:
            in_args["re"] = None  # type: ignore[assignment]
        stream = ffmpeg.input(self.url, **in_args).video
        select = self.sampling.select_expression()
        if select is not None:
            stream = stream.filter("select", select)
        stream = stream.filter("showinfo", checksum=0)
        # Frames leave ffmpeg as planar 4:2:0 (half the bytes of RGB, no conversion in ffmpeg) and
        # become RGB with OpenCV's SIMD converter; odd sizes are padded to even and cut back.
        stream = stream.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
        out = ffmpeg.output(stream, "pipe:", format="rawvideo", pix_fmt="yuv420p", fps_mode="passthrough")
        out = out.global_args("-nostdin", "-hide_banner", "-loglevel", "level+info")
        return [ffmpeg_exe(), *out.get_args()]

    def __enter__(self) -> FFmpegSource:
        self.open()
        return self

    def open(self) -> None:
        """Start the ffmpeg process."""
        if not re.match(r"^[a-z][a-z0-9+.-]*://", self.url) and not Path(self.url).is_file():
            raise IngestError(f"{self.url}: file not found")
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        self._reader = threading.Thread(target=self._read_stderr, name=f"ffmpeg-log-{self.stream}", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        proc = self._proc  # held locally: ``close`` may clear the attribute meanwhile
        assert proc is not None and proc.stderr is not None
        info = self._info
        try:
            for raw in _lines(proc.stderr):
                line = raw.decode("utf-8", "replace").rstrip()
                m = _LEVEL_RE.search(line)
                level, text = (m.group(1), line[m.end() :]) if m else ("info", line)
                if "Parsed_showinfo" in line:
                    if (f := _FRAME_RE.search(text)) is not None:
                        info.frames.put((int(f.group(2)), int(f.group(4)), int(f.group(5))))
                    elif (c := _CONFIG_RE.search(text)) is not None:
                        info.time_base = Fraction(int(c.group(1)), int(c.group(2)))
                        if int(c.group(4)):
                            info.frame_rate = Fraction(int(c.group(3)), int(c.group(4)))
                    continue
                if info.start is None and (s := _START_RE.search(text)) is not None:
                    info.start = float(s.group(1))
                if level in ("error", "fatal", "panic"):
                    info.errors.append(re.sub(r"^\[[^\]]+\]\s*", "", text))
        finally:
            info.frames.put(None)

    def __iter__(self) -> Iterator[Frame]:
        if self._proc is None:
            self.open()
        # Held locally: another thread may ``close`` this source (a watchdog, a stop request).
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        info = self._info
        first_pts: int | None = None
        size: tuple[int, int] | None = None
        while True:
            record = info.frames.get()
            if record is None:
                break
            pts, w, h = record
            size = size or (w, h)
            w2, h2 = size[0] + size[0] % 2, size[1] + size[1] % 2
            nbytes = w2 * h2 * 3 // 2
            data = _read_exact(proc.stdout, nbytes)
            if len(data) < nbytes:
                break
            if info.time_base is None:
                raise IngestError(f"{self.url}: ffmpeg reported no time base")
            if first_pts is None:
                first_pts = pts
                if info.start is not None:
                    # Media time counts from the stream's start, not from the first kept frame.
                    first_pts = min(pts, round(info.start / info.time_base))
            t = float((pts - first_pts) * info.time_base)
            rate = info.frame_rate or Fraction(30)
            planar = np.frombuffer(data, np.uint8).reshape(h2 * 3 // 2, w2)
            image = cv2.cvtColor(planar, cv2.COLOR_YUV2RGB_I420)[: size[1], : size[0]]
            yield Frame(self.stream, round(t * rate), t, image)
        code = proc.wait()
        if self._proc is None:
            return  # closed from outside on purpose: not an input error
        if code != 0 or info.errors:
            raise IngestError(f"{self.url}: {self._reason(code)}")

    def _reason(self, code: int) -> str:
        if self._reader is not None:
            self._reader.join(timeout=5)
        errors = [e for e in self._info.errors if e and not e.startswith("Error while filtering")]
        text = " ".join(errors).lower()
        if "matches no streams" in text or "does not contain any stream" in text:
            return "no video stream in the file"
        if ("decoder" in text and ("not found" in text or "unknown" in text)) or "unsupported codec" in text:
            return f"unsupported codec ({errors[-1]})"
        if "partial file" in text or "nal unit" in text or "error while decoding" in text:
            return f"truncated or corrupt video ({errors[0]})"
        if "invalid data found" in text or "moov atom not found" in text:
            return "not a readable video (empty, truncated or not a media file)"
        if errors:
            return errors[-1]
        return f"ffmpeg exited with status {code}"

    def close(self) -> None:
        """Stop ffmpeg (if still running), let its log reader finish, then close the pipes."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        # After the process is gone the reader sees the end of stderr; close pipes only then.
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
            self._reader = None
        if proc is not None:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _lines(pipe) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    """Lines of a pipe until its end, or until another thread closes it."""
    try:
        yield from pipe
    except (ValueError, OSError):
        return


def _read_exact(pipe, n: int) -> bytes:  # type: ignore[no-untyped-def]
    chunks, got = [], 0
    while got < n:
        try:
            chunk = pipe.read(n - got)
        except ValueError:  # the pipe was closed by another thread: the end of this source
            break
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frames(path: str | Path, sampling: Sampling = Sampling(), stream: str | None = None) -> list[Frame]:
    """Decode a whole file into a list of frames (small files and tests)."""
    with FFmpegSource(path, stream, sampling) as src:
        return list(src)
