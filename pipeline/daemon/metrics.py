"""Prometheus metrics of the worker (``fakewatch_`` prefix, base units, ``_total`` counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One registry per worker, so tests and several workers in a process do not collide."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.decoded = Counter("fakewatch_frames_decoded_total", "Frames decoded", ["stream"], registry=r)
        self.dropped = Counter(
            "fakewatch_frames_dropped_total", "Frames dropped under overload", ["stream"], registry=r
        )
        self.reconnects = Counter("fakewatch_stream_reconnects_total", "Stream reconnections", ["stream"], registry=r)
        self.stage = Histogram(
            "fakewatch_stage_duration_seconds", "Seconds per batch and stage", ["stage"], buckets=_SECONDS, registry=r
        )
        self.batch_size = Histogram(
            "fakewatch_batch_size_frames", "Frames per micro-batch", buckets=(1, 2, 4, 8, 16, 32, 64), registry=r
        )
        self.queue_depth = Gauge("fakewatch_queue_depth_frames", "Frames waiting for the models", registry=r)
        self.latency = Histogram(
            "fakewatch_end_to_end_latency_seconds", "Frame arrival to verdict", buckets=_SECONDS, registry=r
        )
        self.alerts = Counter("fakewatch_alerts_raised_total", "Alerts raised", registry=r)
        self.delivered = Counter("fakewatch_alerts_delivered_total", "Alerts delivered to the webhook", registry=r)
        self.delivery_failures = Counter(
            "fakewatch_alert_delivery_failures_total", "Failed webhook deliveries", registry=r
        )
        self.streams = Gauge("fakewatch_streams", "Streams being watched", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
