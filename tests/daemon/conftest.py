"""Real servers for the daemon tests: nginx with its RTMP module, ffmpeg publishers, a webhook
receiver and the worker itself (``fakewatch serve`` in a subprocess), all on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.ingest.ffmpeg_bin import ffmpeg_exe

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond, timeout: float, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return False


class RtmpServer:
    """nginx + rtmp module on a loopback port; stop() and start() simulate a server crash."""

    def __init__(self, root: Path) -> None:
        if not (Path(NGINX).exists() and RTMP_MODULE.exists()):
            pytest.skip("nginx with libnginx-mod-rtmp is not installed (make test installs it)")
        self.root = root
        self.port = free_port()
        (root / "logs").mkdir(parents=True, exist_ok=True)
        self.conf = root / "nginx.conf"
        self.conf.write_text(
            f"load_module {RTMP_MODULE};\nmaster_process off;\ndaemon off;\nworker_processes 1;\n"
            f"error_log {root}/logs/error.log warn;\npid {root}/nginx.pid;\n"
            "events { worker_connections 256; }\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{self.port}; chunk_size 4096;\n"
            "  application live { live on; record off; wait_key on; } } }\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(self.root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert wait_until(self._listening, 10), "nginx did not start"

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{name}"


class Publisher:
    """``ffmpeg -re`` pushing a file into the RTMP server (looped when asked)."""

    def __init__(self, video: Path, url: str, loop: bool = False) -> None:
        cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-re"]
        if loop:
            cmd += ["-stream_loop", "-1"]
        cmd += ["-i", str(video), "-c", "copy", "-f", "flv", url]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Receiver:
    """A webhook receiver that can be taken down (connection refused) and brought back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict] = []
        self.server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                body["_headers"] = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"


class Daemon:
    """``fakewatch serve`` in a subprocess with its own config and state folder."""

    TOKEN = "test-token"

    def __init__(
        self,
        root: Path,
        gallery: Path,
        webhook: str,
        extra: dict | None = None,
        ray: dict | None = None,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        self.root, self.port = root, free_port()
        self.serve_args = serve_args
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "daemon.yaml"
        daemon = {
            "port": self.port,
            "token": self.TOKEN,
            "gallery": str(gallery),
            "index": str(root / "index"),
            "outbox": str(root / "outbox.sqlite"),
            "evidence": str(root / "evidence"),
            "webhook_url": webhook,
            "webhook_secret": "whsec_dGVzdC1zZWNyZXQ=",
            "stall_timeout": 5.0,
            **(extra or {}),
        }
        import yaml

        base = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "fakewatch.yaml").read_text())
        base.pop("calibration", None)
        base["daemon"] = {**base["daemon"], **daemon}
        base["ray"] = {**base["ray"], "state_dir": str(root / "fleet"), **(ray or {})}
        self.config.write_text(yaml.safe_dump(base))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "daemon.log"

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "serve", "--config", str(self.config), *self.serve_args],
                stdout=log,
                stderr=log,
                env=env,
                cwd=Path(__file__).resolve().parents[2],
            )
        assert wait_until(self.healthy, 120, 0.3), self.log.read_text()[-3000:]

    def healthy(self) -> bool:
        try:
            return self.get("/healthz")["status"] == "ok"
        except OSError:
            return False

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = TOKEN):  # type: ignore[no-untyped-def]
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return (
                json.loads(raw)
                if raw and resp.headers.get("content-type", "").startswith("application/json")
                else raw.decode()
            )

    def get(self, path: str):  # type: ignore[no-untyped-def]
        return self.request("GET", path, token=None)

    def terminate(self, timeout: float = 15) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def rtmp(tmp_path):
    server = RtmpServer(tmp_path / "nginx")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def fake_clip(tmp_path_factory, library):
    """12 s at 30 fps: a mirrored fake of an enrolled brand (the demo gallery's marks) from about 4 s."""
    import numpy as np

    from pipeline.synth.clips import plan_scripted_clip, render_clip

    marks = list(library)
    out = tmp_path_factory.mktemp("live")
    spec = plan_scripted_clip(
        "live_fake",
        np.random.default_rng(0),
        [(marks[5], None), (marks[14], "mirror")],
        marks[:40],
        seconds=12,
        size=(640, 360),
        min_mark=90,
        max_mark=120,
    )
    return render_clip(spec, out)


def counterfeits(clip: Path) -> list[dict]:
    labels = json.loads(clip.with_suffix(".json").read_text())
    return [o for o in labels["objects"] if not o["authentic"]]
