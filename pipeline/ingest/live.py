"""Live sources: one ffmpeg process per stream, reconnected with backoff, restarted when stalled.

``LiveSource`` yields frames like any ``Source``, across reconnections: when the server drops the
stream it waits (exponential backoff with jitter) and connects again; when a connected stream
stops delivering frames for ``stall_timeout`` seconds a watchdog kills ffmpeg so it reconnects.
Its ``state`` is one of starting, running, reconnecting, stalled, ended, failed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline.ingest.source import FFmpegSource, IngestError, Sampling
from pipeline.ingest.urls import StreamURL
from pipeline.types import Frame


@dataclass
class SourceStats:
    """Counters a live source keeps for the state API and metrics."""

    frames: int = 0
    reconnects: int = 0
    stalls: int = 0
    last_frame_at: float = 0.0
    last_error: str = ""
    started_at: float = field(default_factory=time.time)


class LiveSource:
    """A reconnecting source for one live stream."""

    def __init__(
        self,
        stream: str,
        url: StreamURL,
        sampling: Sampling,
        stall_timeout: float = 10.0,
        connect_grace: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 15.0,
        max_retries: int | None = None,
    ) -> None:
        self.stream = stream
        self.url = url
        self.sampling = sampling
        self.stall_timeout = stall_timeout
        self.connect_grace = connect_grace
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.max_retries = max_retries
        self.state = "starting"
        self.stats = SourceStats()
        self._stop = threading.Event()
        self._current: FFmpegSource | None = None
        self._lock = threading.Lock()
        # Media time keeps growing across reconnections: each session starts where the last ended.
        self._offset = 0.0

    def stop(self) -> None:
        """Stop reading (from any thread); the iterator ends soon after."""
        self._stop.set()
        with self._lock:
            if self._current is not None:
                self._current.close()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watchdog(self, session: FFmpegSource, connected: threading.Event) -> None:
        while not self._stop.is_set() and not connected.wait(0.2):
            pass
        opened = time.time()
        frames_before = self.stats.frames
        while not self._stop.is_set() and session._proc is not None:
            last = self.stats.last_frame_at or self.stats.started_at
            # Connecting and probing a live stream takes seconds before the first frame.
            limit = self.stall_timeout + (self.connect_grace if self.stats.frames == frames_before else 0.0)
            if time.time() - max(last, opened) > limit:
                self.state = "stalled"
                self.stats.stalls += 1
                session.close()
                return
            time.sleep(0.2)

    def __iter__(self) -> Iterator[Frame]:
        attempt = 0
        while not self._stop.is_set():
            session = FFmpegSource(self.url.url, self.stream, self.sampling, self.url.input_args)
            connected = threading.Event()
            with self._lock:
                self._current = session
            self.stats.last_frame_at = time.time()
            dog = threading.Thread(target=self._watchdog, args=(session, connected), daemon=True)
            got_frames = False
            try:
                session.open()
                connected.set()
                dog.start()
                last_t = 0.0
                for frame in session:
                    if self._stop.is_set():
                        break
                    got_frames = True
                    attempt = 0
                    self.state = "running"
                    self.stats.frames += 1
                    self.stats.last_frame_at = time.time()
                    last_t = frame.t
                    yield Frame(frame.stream, frame.index, frame.t + self._offset, frame.image)
                self._offset += last_t
            except IngestError as exc:
                self.stats.last_error = str(exc)
            finally:
                connected.set()
                session.close()
                dog.join(timeout=1)
            if self._stop.is_set():
                break
            if self.url.local:
                self.state = "ended"  # a file played through: nothing to reconnect to
                return
            attempt = 0 if got_frames else attempt + 1
            if self.max_retries is not None and attempt > self.max_retries:
                self.state = "failed"
                return
            if self.state != "stalled":
                self.state = "reconnecting"
            self.stats.reconnects += 1
            delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))
            self._stop.wait(delay)
        self.state = "ended"
