"""Ray actors of the fleet: worker actors that run the daemon's ``Worker``, and the scheduler.

- ``FleetWorker`` wraps one daemon ``Worker`` unchanged: its own ffmpeg sources, batched
  inference and a local SQLite outbox. Alerts are committed there first and forwarded to the
  scheduler (at least once, stable ids), so frames never leave the worker's machine; only
  stream assignments and alerts travel.
- ``FleetScheduler`` (a named actor, restarted by Ray when it dies) owns the ``Registry``,
  persisted in SQLite: placement on the least-loaded worker with room, rebalancing when workers
  join, failover when one dies. It also holds the fleet's central outbox and webhook delivery.
- ``Fleet`` is the driver's side: it starts the actors and serves the daemon's HTTP API.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.alerts import Alert
from pipeline.config import Config
from pipeline.daemon.worker import Worker, WorkerError, check_stream_request
from pipeline.fleet import connect, require_ray
from pipeline.fleet.registry import Move, Registry, RegistryError
from pipeline.ingest.urls import check_url
from pipeline.outbox import Forwarder, Outbox, WebhookDeliverer

SCHEDULER = "fakewatch-scheduler"
FLEET_SINK = "fleet"

ray = require_ray()
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402


def worker_outbox(config: Config, name: str) -> Path:
    """Where worker ``name`` keeps its local outbox (the scheduler drains it if the worker dies)."""
    return config.path(config.ray.state_dir) / "workers" / name / "outbox.sqlite"


class FleetWorker:
    """One worker actor: the daemon's ``Worker`` plus a forwarder of its alerts to the scheduler."""

    def __init__(self, config: Config, name: str) -> None:
        self.name = name
        local = dataclasses.replace(
            config,
            daemon=dataclasses.replace(
                config.daemon,
                outbox=str(worker_outbox(config, name)),
                webhook_url="",  # the scheduler delivers; a worker only forwards
                max_streams=config.ray.streams_per_worker,
            ),
        )
        self._scheduler: Any = None
        self.worker = Worker.from_config(local, sinks=(FLEET_SINK,))
        self.forwarder = Forwarder(self.worker.outbox, FLEET_SINK, self._send)
        self.worker.delivery = self.forwarder  # the worker starts it, and flushes it when draining
        # The spine commits alerts to the outbox; wake the forwarder at once rather than at its poll.
        self.worker.spine.sinks.append(_Wake(self.forwarder))
        self.worker.start()

    def _send(self, records: list[dict]) -> None:
        if self._scheduler is None:
            self._scheduler = ray.get_actor(SCHEDULER)
        try:
            ray.get(self._scheduler.commit_alerts.remote(records, self.name), timeout=10)
        except Exception:
            self._scheduler = None  # it may have restarted: look it up again next time
            raise

    def add_stream(self, stream_id: str, url: str, seller: str | None = None) -> dict:
        try:
            return self.worker.add_stream(stream_id, url, seller)
        except WorkerError as exc:
            if "already exists" in str(exc):
                return {"id": stream_id, "url": url, "state": "running"}
            raise

    def remove_stream(self, stream_id: str) -> bool:
        try:
            self.worker.remove_stream(stream_id)
        except WorkerError:
            return False
        return True

    def list_streams(self) -> list[dict]:
        return [{**s, "worker": self.name} for s in self.worker.list_streams()]

    def ping(self) -> list[str]:
        """The ids of the streams this worker runs (the scheduler reconciles with its registry)."""
        return sorted(self.worker.streams)

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """The Ray node this worker runs on."""
        return str(ray.get_runtime_context().get_node_id())

    def shutdown(self, timeout: float = 8.0) -> None:
        """Drain frames through the spine, forward every alert, stop (the worker does all three)."""
        self.worker.shutdown(timeout=timeout)


class _Wake:
    """An alert sink that only wakes the forwarder (the outbox sink has already committed)."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    def write(self, alert: Alert) -> None:
        self.forwarder.wake()

    def close(self) -> None:
        pass


class FleetScheduler:
    """The named scheduler actor: registry, placement, failover and the central alert outbox."""

    def __init__(self, config: Config) -> None:
        self.config = config
        rc = config.ray
        state = config.path(rc.state_dir)
        self.registry = Registry(state / "registry.sqlite")
        d = config.daemon
        self.outbox = Outbox(state / "alerts.sqlite", sinks=("webhook",) if d.webhook_url else ())
        self.webhook = WebhookDeliverer(self.outbox, d.webhook_url, d.webhook_secret).start() if d.webhook_url else None
        self.handles: dict[str, Any] = {}
        self.misses: dict[str, int] = {}
        self._stop = threading.Event()
        # A restarted scheduler finds the workers of its registry by name; the missing are lost.
        for name, w in self.registry.snapshot()["workers"].items():
            if w["alive"]:
                try:
                    self.handles[name] = ray.get_actor(name)
                except ValueError:
                    self._lose(name, "not found after scheduler restart")
        self._thread = threading.Thread(target=self._health_loop, name="health", daemon=True)
        self._thread.start()

    # --- workers ------------------------------------------------------------------------

    def join(self, name: str, capacity: int) -> dict:
        """A worker actor (already created under ``name``) joins; streams may move to it."""
        self.handles[name] = ray.get_actor(name)
        self.misses[name] = 0
        self._apply(self.registry.join(name, capacity))
        self._event("join", worker=name)
        return self.registry.snapshot()["workers"][name]

    def leave(self, name: str) -> None:
        """A worker leaves on purpose (scale-in): its streams move first."""
        self._apply(self.registry.leave(name))
        self.handles.pop(name, None)

    def _lose(self, name: str, why: str) -> None:
        moves = self.registry.lost(name)
        self.handles.pop(name, None)
        self._event("lost", worker=name, why=why, moved=[m.stream for m in moves])
        self._drain(name)
        self._apply(moves)

    def _drain(self, name: str) -> None:
        """Commit what a dead worker's local outbox still held (when its file is reachable)."""
        path = worker_outbox(self.config, name)
        if not path.is_file():
            return
        try:
            with Outbox(path, sinks=(FLEET_SINK,)) as box:
                while items := box.due(FLEET_SINK, 500, now=float("inf")):
                    self.commit_alerts([i.record for i in items], name)
                    for i in items:
                        box.delivered(i.alert_id, FLEET_SINK)
        except Exception as exc:  # a damaged file must not stop failover
            self._event("drain_failed", worker=name, why=str(exc))

    def _apply(self, moves: list[Move]) -> None:
        """Carry out placements: stop on the old worker (if alive), start on the new one."""
        for m in moves:
            if m.source and m.source != m.to and m.source in self.handles:
                self.handles[m.source].remove_stream.remote(m.stream)
            if m.to and m.to in self.handles:
                try:
                    ray.get(
                        self.handles[m.to].add_stream.remote(m.stream, m.url, m.seller),
                        timeout=self.config.ray.health_timeout,
                    )
                except Exception as exc:
                    # The health loop reconciles: a dead target is lost, a live one retried.
                    self._event("start_failed", stream=m.stream, worker=m.to, why=str(exc)[:200])

    def _health_loop(self) -> None:
        rc = self.config.ray
        while not self._stop.wait(rc.health_interval):
            try:
                self.check()
            except Exception as exc:  # keep watching whatever one round raised
                self._event("health_error", why=str(exc)[:200])

    def check(self) -> None:
        """Ping every worker; a dead or silent one is lost and its streams move; drift is reconciled."""
        rc = self.config.ray
        pings = {name: h.ping.remote() for name, h in list(self.handles.items())}
        if not pings:
            self._apply(self.registry.place_pending())
            return
        ready, _ = ray.wait(list(pings.values()), num_returns=len(pings), timeout=rc.health_timeout)
        done = set(ready)
        for name, ref in pings.items():
            if ref not in done:
                self.misses[name] = self.misses.get(name, 0) + 1
                if self.misses[name] >= 2:
                    # Silent for two timeouts: kill it so it cannot raise duplicates, then move on.
                    handle = self.handles.get(name)
                    if handle is not None:
                        ray.kill(handle, no_restart=True)
                    self._lose(name, "health check timed out")
                continue
            try:
                running = set(ray.get(ref))
            except ray.exceptions.RayActorError as exc:
                self._lose(name, type(exc).__name__)
                continue
            self.misses[name] = 0
            self._reconcile(name, running)
        self._apply(self.registry.place_pending())

    def _reconcile(self, name: str, running: set[str]) -> None:
        # Only this worker's streams: a health round must not copy the whole registry per worker.
        assigned = self.registry.assigned(name)
        for sid in sorted(assigned.keys() - running):
            self._apply([assigned[sid]])
        for sid in sorted(running - assigned.keys()):
            self.handles[name].remove_stream.remote(sid)

    # --- streams and alerts -------------------------------------------------------------

    def add_stream(self, stream_id: str, url: str, seller: str | None = None) -> dict:
        try:
            move = self.registry.add_stream(stream_id, url, seller)
        except RegistryError as exc:
            return {"error": str(exc)}
        self._apply([move])
        return self.registry.stream(stream_id)

    def remove_stream(self, stream_id: str) -> dict:
        try:
            worker = self.registry.remove_stream(stream_id)
        except RegistryError as exc:
            return {"error": str(exc)}
        if worker in self.handles:
            try:
                ray.get(self.handles[worker].remove_stream.remote(stream_id), timeout=10)
            except Exception as exc:  # a dead worker runs nothing; the health loop handles it
                self._event("stop_failed", stream=stream_id, worker=worker, why=str(exc)[:200])
        self._apply(self.registry.place_pending())
        return {}

    def commit_alerts(self, records: list[dict], worker: str = "") -> int:
        """Commit forwarded alerts to the central outbox; a repeated id is stored once."""
        for r in records:
            self.outbox.write(Alert.from_json(r, f"alert from {worker}"))
        return len(records)

    def snapshot(self) -> dict:
        return self.registry.snapshot()

    def recent_alerts(self, limit: int = 100, stream: str | None = None) -> list[dict]:
        return self.outbox.recent(limit, stream)

    def counts(self) -> dict:
        return self.outbox.counts()

    def _event(self, kind: str, **fields: Any) -> None:
        # Placement events (joins, losses, failed starts) go to the log, where operators read them.
        event = {"t": time.time(), "event": kind, **fields}
        print(f"fakewatch scheduler: {event}", file=sys.stderr, flush=True)

    def ready(self) -> bool:
        return True

    def stop(self, flush: float = 2.0) -> dict:
        """Stop watching and flush webhook deliveries (the registry stays on disk)."""
        self._stop.set()
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook.flush(time.monotonic() + flush)
        return self.outbox.counts()


class Fleet:
    """The driver's side of ``serve --ray``: starts the scheduler and workers, serves the API.

    Implements the daemon API's ``StreamService``.
    """

    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.scheduler: Any = None
        self.workers: dict[str, Any] = {}
        self._started_ray = False

    def start(self, address: str | None = None) -> Fleet:
        """Join (or start) the cluster, then the scheduler and ``ray.workers`` worker actors."""
        from pipeline.cli import resolve_index

        rc = self.config.ray
        self._started_ray = connect(self.config, address)
        # Build the gallery index once here, not in every worker at the same time.
        d = self.config.daemon
        index = self.config.path(d.index)
        if not (index / "index.json").is_file():
            index = resolve_index(self.config.path(d.gallery), self.config_path)
        self.config = dataclasses.replace(self.config, daemon=dataclasses.replace(d, index=str(index)))
        # The scheduler lives beside this process: its registry and outbox are files under
        # ray.state_dir here, and a lost worker node must not take it along.
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
        self.scheduler = (
            ray.remote(FleetScheduler)
            .options(
                scheduling_strategy=here,
                name=SCHEDULER,
                get_if_exists=True,
                max_restarts=-1,
                max_task_retries=3,
                max_concurrency=32,
                num_cpus=0,
            )
            .remote(self.config)
        )
        ray.get(self.scheduler.ready.remote())
        self.add_workers(rc.workers)
        return self

    def add_workers(self, n: int) -> list[str]:
        """Start ``n`` more worker actors and join them (streams are rebalanced onto them)."""
        rc = self.config.ray
        tag = uuid.uuid4().hex[:6]
        names = [f"worker-{tag}-{len(self.workers) + i}" for i in range(n)]
        actor = ray.remote(FleetWorker)
        handles = {
            name: actor.options(name=name, num_cpus=rc.worker_cpus, num_gpus=rc.worker_gpus, max_concurrency=8).remote(
                self.config, name
            )
            for name in names
        }
        ray.get([h.pid.remote() for h in handles.values()])  # models loaded
        self.workers.update(handles)
        for name in names:
            ray.get(self.scheduler.join.remote(name, rc.streams_per_worker))
        return names

    # --- StreamService ------------------------------------------------------------------

    def add_stream(self, stream_id: str, url: str, seller: str | None = None) -> dict:
        seller = check_stream_request(stream_id, seller)
        check_url(url, allow_files=self.config.daemon.allow_files)  # refused here, before placement
        out = ray.get(self.scheduler.add_stream.remote(stream_id, url, seller))
        if "error" in out:
            raise WorkerError(out["error"])
        return out

    def remove_stream(self, stream_id: str) -> None:
        out = ray.get(self.scheduler.remove_stream.remote(stream_id))
        if "error" in out:
            raise WorkerError(out["error"])

    def list_streams(self) -> list[dict]:
        """The registry's streams, with live state from the worker that runs each."""
        snap = ray.get(self.scheduler.snapshot.remote())
        live: dict[str, dict] = {}
        refs = [h.list_streams.remote() for h in self.workers.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.config.ray.health_timeout)
        for ref in ready:
            try:
                live.update({s["id"]: s for s in ray.get(ref) if s["id"] in snap["streams"]})
            except ray.exceptions.RayActorError:
                continue
        out = []
        for sid, rec in snap["streams"].items():
            state = live.get(sid, {})
            if state.get("worker") not in (None, rec["worker"]):
                state = {}
            out.append({**state, **rec, "state": state.get("state", rec["placement"])})
        return out

    def recent_alerts(self, limit: int = 100, stream: str | None = None) -> list[dict]:
        return ray.get(self.scheduler.recent_alerts.remote(limit, stream))

    def health(self) -> dict:
        snap = ray.get(self.scheduler.snapshot.remote())
        alive = [n for n, w in snap["workers"].items() if w["alive"]]
        return {
            "status": "ok" if alive else "degraded",
            "streams": len(snap["streams"]),
            "workers": len(alive),
            "outbox": ray.get(self.scheduler.counts.remote()),
        }

    def render_metrics(self) -> bytes:
        snap = ray.get(self.scheduler.snapshot.remote())
        counts = ray.get(self.scheduler.counts.remote())
        lines = [
            "# HELP fakewatch_fleet_workers Worker actors alive",
            "# TYPE fakewatch_fleet_workers gauge",
            f"fakewatch_fleet_workers {sum(w['alive'] for w in snap['workers'].values())}",
            "# HELP fakewatch_fleet_streams Streams placed per worker",
            "# TYPE fakewatch_fleet_streams gauge",
            *(
                f'fakewatch_fleet_streams{{worker="{n}"}} {len(w["streams"])}'
                for n, w in snap["workers"].items()
                if w["alive"]
            ),
            "# HELP fakewatch_fleet_pending_streams Streams waiting for room",
            "# TYPE fakewatch_fleet_pending_streams gauge",
            f"fakewatch_fleet_pending_streams {sum(s['worker'] is None for s in snap['streams'].values())}",
            "# HELP fakewatch_fleet_alerts_stored Alerts in the central outbox",
            "# TYPE fakewatch_fleet_alerts_stored gauge",
            f"fakewatch_fleet_alerts_stored {counts['alerts']}",
        ]
        return ("\n".join(lines) + "\n").encode()

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain every worker (their alerts reach the central outbox), flush the webhook, stop."""
        timeout = timeout or self.config.daemon.shutdown_timeout
        refs = [h.shutdown.remote(max(1.0, timeout - 2)) for h in self.workers.values()]
        ray.wait(refs, num_returns=len(refs), timeout=timeout)
        if self.scheduler is not None:
            ray.get(self.scheduler.stop.remote(), timeout=5)
        for h in self.workers.values():
            ray.kill(h, no_restart=True)
        if self._started_ray:
            ray.shutdown()
