"""Durable alert delivery: an SQLite outbox (WAL) and a webhook deliverer.

An alert is committed to the outbox before anything else sees it; every registered sink then has
a pending delivery row for it. The webhook deliverer sends due rows at least once, signed per
Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), retrying with
exponential backoff and jitter. Rows survive restarts, so delivery resumes where it stopped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.alerts import Alert


@dataclass(frozen=True)
class Pending:
    """One alert waiting for delivery to one sink."""

    alert_id: str
    record: dict
    attempts: int


class Outbox:
    """The SQLite outbox; thread-safe. Also an ``AlertSink`` (``write`` commits and queues)."""

    def __init__(self, path: str | Path, sinks: Sequence[str] = ("webhook",)) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sinks = tuple(sinks)
        self._lock = threading.Lock()
        self.db: sqlite3.Connection | None = sqlite3.connect(str(self.path), check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed alert survives a crash (SIGKILL) and a power cut.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS alerts (
                id TEXT PRIMARY KEY, stream TEXT, t REAL, brand TEXT, record TEXT NOT NULL, created_at REAL);
            CREATE TABLE IF NOT EXISTS deliveries (
                alert_id TEXT NOT NULL, sink TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                next_at REAL NOT NULL, delivered_at REAL, last_error TEXT, PRIMARY KEY (alert_id, sink));
            CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (sink, delivered_at, next_at);
            -- /alerts, /review and /evidence read the newest alerts (of one stream): without these a
            -- months-old outbox is scanned and sorted on every request (benchmarks/outbox_recent.py).
            CREATE INDEX IF NOT EXISTS alerts_recent ON alerts (created_at);
            CREATE INDEX IF NOT EXISTS alerts_stream ON alerts (stream, created_at);
            """
        )
        self.db.commit()

    def write(self, alert: Alert) -> None:
        """Commit ``alert`` and a pending delivery per sink; a repeated id is stored once."""
        now = time.time()
        with self._lock:
            assert self.db is not None, "outbox is closed"
            with self.db:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO alerts (id, stream, t, brand, record, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (alert.id, alert.stream, alert.t, alert.brand, json.dumps(alert.to_json()), now),
                )
                if cur.rowcount:
                    self.db.executemany(
                        "INSERT OR IGNORE INTO deliveries (alert_id, sink, next_at) VALUES (?, ?, ?)",
                        [(alert.id, sink, now) for sink in self.sinks],
                    )

    def due(self, sink: str, limit: int = 50, now: float | None = None) -> list[Pending]:
        """Undelivered alerts of ``sink`` whose next attempt is due, oldest first."""
        with self._lock:
            assert self.db is not None, "outbox is closed"
            rows = self.db.execute(
                "SELECT d.alert_id, a.record, d.attempts FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
                "WHERE d.sink = ? AND d.delivered_at IS NULL AND d.next_at <= ? ORDER BY a.created_at LIMIT ?",
                (sink, time.time() if now is None else now, limit),
            ).fetchall()
        return [Pending(r[0], json.loads(r[1]), int(r[2])) for r in rows]

    def delivered(self, alert_id: str, sink: str) -> None:
        with self._lock:
            assert self.db is not None, "outbox is closed"
            with self.db:
                self.db.execute(
                    "UPDATE deliveries SET delivered_at = ?, last_error = NULL, attempts = attempts + 1 "
                    "WHERE alert_id = ? AND sink = ?",
                    (time.time(), alert_id, sink),
                )

    def failed(self, alert_id: str, sink: str, error: str, retry_in: float) -> None:
        with self._lock:
            assert self.db is not None, "outbox is closed"
            with self.db:
                self.db.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, next_at = ?, last_error = ? "
                    "WHERE alert_id = ? AND sink = ?",
                    (time.time() + retry_in, error[:500], alert_id, sink),
                )

    def counts(self) -> dict[str, int]:
        """Alerts stored, and deliveries done and pending."""
        with self._lock:
            assert self.db is not None, "outbox is closed"
            alerts = self.db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
            done = self.db.execute("SELECT COUNT(*) FROM deliveries WHERE delivered_at IS NOT NULL").fetchone()[0]
            pending = self.db.execute("SELECT COUNT(*) FROM deliveries WHERE delivered_at IS NULL").fetchone()[0]
        return {"alerts": int(alerts), "delivered": int(done), "pending": int(pending)}

    def recent(self, limit: int = 100, stream: str | None = None) -> list[dict]:
        """The latest alerts (of one ``stream`` where given), newest first."""
        with self._lock:
            assert self.db is not None, "outbox is closed"
            where, args = ("WHERE stream = ? ", (stream, limit)) if stream is not None else ("", (limit,))
            query = f"SELECT record FROM alerts {where}ORDER BY created_at DESC LIMIT ?"
            rows = self.db.execute(query, args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self.db is not None:
                self.db.close()
                self.db = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Delivery(Protocol):
    """A thread that sends an outbox's committed alerts onward (``WebhookDeliverer``, ``Forwarder``)."""

    def start(self) -> Delivery: ...

    def stop(self) -> None: ...

    def flush(self, deadline: float) -> None: ...


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature header value (``v1,<base64 HMAC-SHA256>``).

    ``secret`` is ``whsec_`` followed by the base64 key (a plain string is used as the key).
    """
    key = base64.b64decode(secret[len("whsec_") :]) if secret.startswith("whsec_") else secret.encode()
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return (rng or random).uniform(0, min(cap, base * 2**attempt))


class WebhookDeliverer:
    """A thread that POSTs due alerts from the outbox to one URL until they are acknowledged."""

    def __init__(
        self,
        outbox: Outbox,
        url: str,
        secret: str,
        sink: str = "webhook",
        timeout: float = 5.0,
        poll: float = 0.2,
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        self.outbox, self.url, self.secret, self.sink = outbox, url, secret, sink
        self.timeout, self.poll = timeout, poll
        self.on_result = on_result
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)

    def start(self) -> WebhookDeliverer:
        self._thread.start()
        return self

    def deliver_once(self, item: Pending) -> bool:
        """Send one alert; True when the receiver acknowledged it (2xx)."""
        body = json.dumps(item.record, separators=(",", ":")).encode()
        ts = int(time.time())
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "content-type": "application/json",
                "webhook-id": item.alert_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": sign(self.secret, item.alert_id, ts, body),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                ok = 200 <= resp.status < 300
                error = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            ok, error = False, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            ok, error = False, str(getattr(exc, "reason", exc))
        if ok:
            self.outbox.delivered(item.alert_id, self.sink)
        else:
            self.outbox.failed(item.alert_id, self.sink, error, backoff(item.attempts))
        if self.on_result:
            self.on_result(ok)
        return ok

    def flush(self, deadline: float) -> None:
        """Try every due alert until none is due or ``deadline`` (monotonic seconds) passes."""
        while time.monotonic() < deadline:
            items = self.outbox.due(self.sink)
            if not items:
                return
            for item in items:
                if time.monotonic() >= deadline:
                    return
                self.deliver_once(item)

    def _run(self) -> None:
        while not self._stop.is_set():
            items = self.outbox.due(self.sink)
            for item in items:
                if self._stop.is_set():
                    break
                self.deliver_once(item)
            if not items:
                self._stop.wait(self.poll)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 1)


class Forwarder:
    """A thread that hands due alerts of one sink to ``send`` in batches, at least once.

    ``send`` raises on failure; the batch then stays pending and is retried with backoff. The
    fleet's workers use it to pass alerts from their local outbox to the scheduler's.
    """

    def __init__(
        self, outbox: Outbox, sink: str, send: Callable[[list[dict]], None], poll: float = 0.1, batch: int = 100
    ) -> None:
        self.outbox, self.sink, self.send = outbox, sink, send
        self.poll, self.batch = poll, batch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"forward-{sink}", daemon=True)

    def start(self) -> Forwarder:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Send now instead of at the next poll (an alert was just committed)."""
        self._wake.set()

    def forward_once(self) -> int:
        """Send one batch of due alerts; returns how many were acknowledged."""
        items = self.outbox.due(self.sink, self.batch)
        if not items:
            return 0
        try:
            self.send([i.record for i in items])
        except Exception as exc:  # the receiver is down or restarting: retry later
            for i in items:
                self.outbox.failed(i.alert_id, self.sink, str(exc), backoff(i.attempts, cap=5.0))
            return 0
        for i in items:
            self.outbox.delivered(i.alert_id, self.sink)
        return len(items)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.forward_once():
                self._wake.wait(self.poll)
                self._wake.clear()

    def flush(self, deadline: float) -> None:
        """Send due alerts until none is left or ``deadline`` (monotonic seconds) passes."""
        while time.monotonic() < deadline and self.forward_once():
            pass

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
