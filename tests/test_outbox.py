"""The SQLite outbox and webhook delivery, against a real local HTTP receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.alerts import Alert
from pipeline.outbox import Forwarder, Outbox, WebhookDeliverer, backoff, sign

SECRET = "whsec_" + base64.b64encode(b"test-secret-key").decode()


class Receiver:
    """A webhook receiver on loopback that can be switched down (503) and records what it got."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, dict]] = []
        self.up = True
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if not receiver.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def alert(i: int) -> Alert:
    return Alert(stream="s", t=float(i), frame=i * 30, brand="acme", box=(1, 2, 3, 4), score=0.8, track=i)


def wait_for(cond, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_delivers_signed_alerts(tmp_path, receiver):
    with Outbox(tmp_path / "o.sqlite") as box:
        box.write(alert(1))
        d = WebhookDeliverer(box, receiver.url, SECRET).start()
        assert wait_for(lambda: len(receiver.received) == 1)
        d.stop()
        headers, body = receiver.received[0]
        assert headers["webhook-id"] == alert(1).id and body["id"] == alert(1).id
        key = base64.b64decode(SECRET[6:])
        signed = (
            f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode()
            + json.dumps(body, separators=(",", ":")).encode()
        )
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert headers["webhook-signature"] == f"v1,{expected}"
        assert box.counts() == {"alerts": 1, "delivered": 1, "pending": 0}


def test_receiver_down_then_up_loses_nothing(tmp_path, receiver):
    receiver.up = False
    with Outbox(tmp_path / "o.sqlite") as box:
        d = WebhookDeliverer(box, receiver.url, SECRET, poll=0.05).start()
        for i in range(5):
            box.write(alert(i))
        time.sleep(1.0)
        assert receiver.received == [] and box.counts()["pending"] == 5
        receiver.up = True
        assert wait_for(lambda: box.counts()["pending"] == 0, timeout=40)
        d.stop()
    ids = {h["webhook-id"] for h, _ in receiver.received}
    assert ids == {alert(i).id for i in range(5)}


def test_restart_resumes_delivery(tmp_path, receiver):
    with Outbox(tmp_path / "o.sqlite") as box:
        box.write(alert(1))
        box.write(alert(2))
    # A new process: the pending rows are still there and go out.
    with Outbox(tmp_path / "o.sqlite") as box:
        assert box.counts()["pending"] == 2
        d = WebhookDeliverer(box, receiver.url, SECRET)
        d.flush(time.monotonic() + 10)
        assert box.counts()["pending"] == 0
    assert len(receiver.received) == 2


@pytest.mark.parametrize("failures", [0, 2])
def test_forwarder_hands_every_alert_on_at_least_once(tmp_path, failures):
    got: list[str] = []
    calls = {"n": 0}

    def send(records: list[dict]) -> None:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError("scheduler restarting")
        got.extend(r["id"] for r in records)

    with Outbox(tmp_path / "o.sqlite", sinks=("fleet",)) as box:
        fwd = Forwarder(box, "fleet", send, poll=0.02).start()
        ids = []
        for i in range(5):
            a = alert(i)
            box.write(a)
            fwd.wake()
            ids.append(a.id)
        assert wait_for(lambda: set(ids) <= set(got))
        fwd.stop()
        fwd.flush(time.monotonic() + 1)
        assert box.due("fleet", now=float("inf")) == []


def test_forwarder_flush_sends_what_is_left(tmp_path):
    got: list[dict] = []
    with Outbox(tmp_path / "o.sqlite", sinks=("fleet",)) as box:
        fwd = Forwarder(box, "fleet", got.extend)  # never started: only flush sends
        box.write(alert(1))
        box.write(alert(2))
        fwd.flush(time.monotonic() + 2)
        assert sorted(r["t"] for r in got) == [1.0, 2.0]


def test_same_alert_is_stored_once(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as box:
        box.write(alert(1))
        box.write(alert(1))
        assert box.counts()["alerts"] == 1 and len(box.recent()) == 1


@pytest.mark.parametrize(
    ("stream", "limit", "expected"),
    [
        (None, 100, [4.0, 3.0, 2.0, 1.0]),
        (None, 2, [4.0, 3.0]),
        ("s", 100, [3.0, 1.0]),
        ("other", 1, [4.0]),
        ("nope", 100, []),
    ],
)
def test_recent_alerts_newest_first_of_one_stream_or_all(tmp_path, stream, limit, expected):
    import dataclasses

    with Outbox(tmp_path / "o.sqlite") as box:
        for i in range(1, 5):
            box.write(dataclasses.replace(alert(i), stream="s" if i % 2 else "other", id=""))
            time.sleep(0.01)  # created_at orders them
        assert [r["t"] for r in box.recent(limit, stream)] == expected


@pytest.mark.parametrize(("stream", "index"), [(None, "alerts_recent"), ("s", "alerts_stream")])
def test_recent_alerts_are_read_through_an_index(tmp_path, stream, index):
    with Outbox(tmp_path / "o.sqlite") as box:
        assert box.db is not None
        ran: list[str] = []
        box.db.set_trace_callback(ran.append)  # the statement recent() runs, its values filled in
        box.recent(5, stream)
        box.db.set_trace_callback(None)
        query = next(q for q in ran if q.lstrip().upper().startswith("SELECT"))
        plan = " ".join(str(row[-1]) for row in box.db.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert index in plan and "TEMP B-TREE" not in plan, plan  # no scan-and-sort of every alert


@pytest.mark.parametrize("attempt", [0, 1, 5, 20])
def test_backoff_is_bounded(attempt):
    import random

    values = [backoff(attempt, rng=random.Random(i)) for i in range(50)]
    assert all(0 <= v <= min(30.0, 0.5 * 2**attempt) for v in values)


def test_plain_secret_signs_too():
    assert sign("plain", "id", 1, b"{}").startswith("v1,")


def test_sigkill_loses_no_committed_alert(tmp_path):
    """A writer killed mid-stream: every alert whose write() returned is in the outbox."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "o.sqlite"
    progress = tmp_path / "written.txt"
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from pipeline.alerts import Alert
from pipeline.outbox import Outbox
box = Outbox({str(path)!r})
with open({str(progress)!r}, "w") as log:
    for i in range(100000):
        box.write(Alert(stream="s", t=float(i), frame=i, brand="acme", box=(1, 2, 3, 4), score=0.5, track=i))
        log.write(f"{{i}}\\n"); log.flush()
"""
    proc = subprocess.Popen([sys.executable, "-c", code])
    assert wait_for(lambda: progress.exists() and len(progress.read_text().splitlines()) > 50, 30)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = [int(x) for x in progress.read_text().splitlines() if x]
    with Outbox(path) as box:
        stored = box.counts()["alerts"]
    assert stored >= len(written)
