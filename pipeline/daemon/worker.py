"""The live worker: many streams, one spine, bounded queues, durable alerts.

Each stream has its own ffmpeg process (``LiveSource``) on its own thread, feeding one bounded
frame queue that drops the oldest frames when full (counted per stream). One thread takes
micro-batches from the queue through the spine. Alerts go to the SQLite outbox first; the
webhook deliverer sends them from there.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from dataclasses import dataclass, field

from pipeline.alerts import Alert, EvidenceWriter, seller_id
from pipeline.config import Config
from pipeline.daemon.metrics import Metrics
from pipeline.ingest.live import LiveSource
from pipeline.ingest.source import Sampling
from pipeline.ingest.urls import check_url
from pipeline.outbox import Delivery, Outbox, WebhookDeliverer
from pipeline.spine import FrameQueue, Spine, Staged, collect_batch, two_in_flight
from pipeline.types import Frame


class WorkerError(ValueError):
    """A request the worker refuses (unknown stream, duplicate id, full, bad URL)."""


def check_stream_request(stream_id: str, seller: str | None = None) -> str | None:
    """Refuse a stream id or seller id that cannot name a stream (``WorkerError`` says why);
    returns the seller id as alerts will carry it."""
    if not stream_id or len(stream_id) > 128 or any(c in stream_id for c in "/\\\0\n"):
        raise WorkerError("stream id must be 1-128 characters without slashes or newlines")
    try:
        return seller_id(seller)
    except ValueError as exc:
        raise WorkerError(str(exc)) from None


@dataclass
class StreamHandle:
    """One stream the worker watches."""

    id: str
    url: str
    source: LiveSource
    thread: threading.Thread
    seller: str | None = None
    added_at: float = field(default_factory=time.time)
    processed: int = 0
    dropped: int = 0  # frames dropped unjudged under overload (a full queue, or past daemon.max_wait)
    last_latency: float = 0.0
    fps_window: list[float] = field(default_factory=list)

    def state(self) -> dict:
        now = time.time()
        recent = [t for t in self.fps_window if now - t < 10]
        self.fps_window = recent
        return {
            "id": self.id,
            "url": self.url,
            "seller": self.seller,
            "state": self.source.state,
            "frames": self.source.stats.frames,
            "processed": self.processed,
            "dropped": self.dropped,
            "fps": round(len(recent) / 10, 2),
            "lag_s": round(self.last_latency, 3),
            "reconnects": self.source.stats.reconnects,
            "stalls": self.source.stats.stalls,
            "last_error": self.source.stats.last_error or None,
        }


class Worker:
    """Owns the spine, the streams and the alert outbox of one daemon process."""

    def __init__(self, config: Config, spine: Spine, outbox: Outbox, metrics: Metrics) -> None:
        self.config = config
        self.spine = spine
        self.outbox = outbox
        self.metrics = metrics
        # Frames the queue drops never reach _conclude: their arrival times go with them.
        self.frames = FrameQueue(config.daemon.queue, "drop_oldest", on_drop=self._forget)
        self.streams: dict[str, StreamHandle] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._arrivals: dict[tuple[str, int], float] = {}
        self.dropped: collections.Counter[str] = collections.Counter()  # per stream, since start
        # What sends committed alerts onward: the webhook here, the scheduler in a fleet worker.
        self.delivery: Delivery | None = None
        if config.daemon.webhook_url:
            self.delivery = WebhookDeliverer(
                outbox,
                config.daemon.webhook_url,
                config.daemon.webhook_secret,
                on_result=lambda ok: (metrics.delivered if ok else metrics.delivery_failures).inc(),
            )
        self._loop = threading.Thread(target=self._run, name="spine", daemon=True)

    @classmethod
    def from_config(
        cls, config: Config, metrics: Metrics | None = None, sinks: tuple[str, ...] | None = None
    ) -> Worker:
        """Load the models and the gallery index (built from the gallery folder when missing).

        ``sinks`` names the outbox's delivery sinks (default: the webhook, when one is configured).
        """
        from pipeline.cli import resolve_index

        d = config.daemon
        index = config.path(d.index)
        index = resolve_index(index if (index / "index.json").is_file() else config.path(d.gallery))
        metrics = metrics or Metrics()
        if sinks is None:
            sinks = ("webhook",) if d.webhook_url else ()
        outbox = Outbox(config.path(d.outbox), sinks=sinks)
        # Live work has its own verifier switch: the verifier's cost is latency here (daemon.verifier).
        verifier = dataclasses.replace(config.verifier, enabled=config.verifier.enabled and d.verifier)
        verdict = dataclasses.replace(config.verdict, verify_every=d.verify_every, settle=d.settle, confirm=d.confirm)
        live = dataclasses.replace(config, verifier=verifier, verdict=verdict)
        spine = Spine.from_config(live, index, [outbox], EvidenceWriter(config.path(d.evidence)))
        return cls(live, spine, outbox, metrics)

    def start(self) -> Worker:
        self._loop.start()
        if self.delivery is not None:
            self.delivery.start()
        return self

    # --- streams ------------------------------------------------------------------------

    def add_stream(self, stream_id: str, url: str, seller: str | None = None) -> dict:
        """Start watching a stream (``seller``: whose it is, where known; its alerts then say whether
        ``brand.json`` authorizes that seller); raises ``WorkerError`` for a bad request."""
        seller = check_stream_request(stream_id, seller)
        checked = check_url(url, allow_files=self.config.daemon.allow_files)
        ingest = self.config.ingest
        sampling = Sampling.from_arg(self.config.daemon.sample, ingest.skip_nonref, ingest.decoder_threads)
        with self._lock:
            if stream_id in self.streams:
                raise WorkerError(f"stream {stream_id!r} already exists")
            if len(self.streams) >= self.config.daemon.max_streams:
                raise WorkerError(f"this worker is full ({self.config.daemon.max_streams} streams)")
            source = LiveSource(stream_id, checked, sampling, stall_timeout=self.config.daemon.stall_timeout)
            thread = threading.Thread(target=self._decode, args=(source,), name=f"decode-{stream_id}", daemon=True)
            handle = StreamHandle(stream_id, url, source, thread, seller)
            self.streams[stream_id] = handle
            self.spine.set_seller(stream_id, seller)
        thread.start()
        self.metrics.streams.set(len(self.streams))
        return handle.state()

    def remove_stream(self, stream_id: str) -> None:
        with self._lock:
            handle = self.streams.pop(stream_id, None)
        if handle is None:
            raise WorkerError(f"no stream {stream_id!r}")
        handle.source.stop()
        handle.thread.join(timeout=5)
        self.spine.end_stream(stream_id)
        self.metrics.streams.set(len(self.streams))

    def list_streams(self) -> list[dict]:
        with self._lock:
            handles = list(self.streams.values())
        return [h.state() for h in handles]

    def recent_alerts(self, limit: int = 100, stream: str | None = None) -> list[dict]:
        """The latest alerts in the outbox (of one ``stream`` where given), newest first."""
        return self.outbox.recent(limit, stream)

    def health(self) -> dict:
        return {"status": "ok", "streams": len(self.streams), "outbox": self.outbox.counts()}

    def render_metrics(self) -> bytes:
        return self.metrics.render()

    def _decode(self, source: LiveSource) -> None:
        reconnects = 0
        for frame in source:
            if self._stop.is_set():
                break
            self._arrivals[(frame.stream, frame.index)] = time.monotonic()
            self.metrics.decoded.labels(frame.stream).inc()
            self.frames.put(frame)
            if source.stats.reconnects != reconnects:
                self.metrics.reconnects.labels(frame.stream).inc(source.stats.reconnects - reconnects)
                reconnects = source.stats.reconnects

    # --- processing ---------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.config.batch

        def next_batch() -> list[Frame] | None:
            if self._stop.is_set() and not self.frames.qsize():
                return None
            batch, _ = collect_batch(self.frames, cfg.size, cfg.deadline_ms, idle=0.2)
            batch = self._fresh(batch)
            self._publish_drops()
            return batch

        # Two batches in flight, as replay does; with no frame waiting, a staged batch is
        # finished at once instead of waiting for the next to arrive.
        # (``_conclude`` looked up per batch: benchmarks wrap it on a running worker.)
        two_in_flight(
            self.spine, next_batch, lambda staged: self._conclude(staged), idle=lambda: not self.frames.qsize()
        )

    def process(self, batch: list[Frame]) -> list[Alert]:
        """One micro-batch through the spine, with metrics."""
        return self._conclude(self.spine.stage(batch))

    def _conclude(self, staged: Staged) -> list[Alert]:
        """A staged micro-batch's verdicts and alerts, with metrics."""
        alerts = self.spine.conclude(staged)
        batch = staged.frames
        self.metrics.batch_size.observe(len(batch))
        self.metrics.stage.labels("spine").observe(time.perf_counter() - staged.started)
        now = time.monotonic()
        for frame in batch:
            arrived = self._arrivals.pop((frame.stream, frame.index), now)
            self.metrics.latency.observe(now - arrived)
            handle = self.streams.get(frame.stream)
            if handle is not None:
                handle.processed += 1
                handle.last_latency = now - arrived
                handle.fps_window.append(time.time())
        for _ in alerts:
            self.metrics.alerts.inc()
        self.metrics.queue_depth.set(self.frames.qsize())
        return alerts

    def _fresh(self, batch: list[Frame]) -> list[Frame]:
        """The frames of ``batch`` that waited at most ``daemon.max_wait`` since they were decoded;
        the others are dropped (counted per stream, as the queue's own drops are). An overloaded
        worker then spends its time on fresh frames, and its lag stays near that bound instead of
        growing to all the queue holds: on a slow 2-core machine 50 streams waited 11 s (p95)."""
        limit = self.config.daemon.max_wait
        if limit <= 0 or not batch:
            return batch
        now = time.monotonic()
        fresh = []
        for frame in batch:
            if now - self._arrivals.get((frame.stream, frame.index), now) > limit:
                self.frames.drop(frame)
            else:
                fresh.append(frame)
        return fresh

    def _forget(self, frame: Frame) -> None:
        self._arrivals.pop((frame.stream, frame.index), None)

    def frames_dropped(self) -> int:
        """Frames dropped since the worker started, all streams together."""
        return sum(self.dropped.values()) + sum(self.frames.dropped.values())

    def _publish_drops(self) -> None:
        # Taken under the queue's lock: decoder threads count new drops while this runs.
        for stream, n in self.frames.take_dropped().items():
            self.metrics.dropped.labels(stream).inc(n)
            self.dropped[stream] += n
            handle = self.streams.get(stream)
            if handle is not None:
                handle.dropped += n

    # --- shutdown -----------------------------------------------------------------------

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop ingest, drain queued frames through the spine, flush alert delivery, close."""
        deadline = time.monotonic() + (timeout or self.config.daemon.shutdown_timeout)
        with self._lock:
            handles = list(self.streams.values())
        for h in handles:
            h.source.stop()
        self._stop.set()
        if self._loop.ident is not None:  # a worker that never started has no loop to wait for
            self._loop.join(timeout=max(0.1, deadline - time.monotonic() - 2))
        for h in handles:
            h.thread.join(timeout=0.5)
        if self.delivery is not None:
            self.delivery.stop()
            self.delivery.flush(min(deadline, time.monotonic() + 2))
        self.spine.close()
