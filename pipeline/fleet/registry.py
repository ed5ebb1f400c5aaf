"""The stream registry of a fleet: which streams exist, which worker runs each, and placement.

Pure bookkeeping, no Ray: the scheduler actor wraps it, and ``benchmarks/scheduler_scale.py``
drives it with simulated workers. Every change returns the ``Move``s the caller must carry out
(start a stream on a worker, stop it on another) and is written through to SQLite, so that a
restarted scheduler finds the same registry.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RUNNING = "running"
PENDING = "pending"  # known, but no worker has room for it yet


class RegistryError(ValueError):
    """A request the registry refuses (duplicate or unknown stream)."""


@dataclass
class StreamRecord:
    """One stream the fleet watches."""

    id: str
    url: str
    worker: str | None = None
    state: str = PENDING
    added_at: float = field(default_factory=time.time)
    placements: int = 0  # times started on a worker; every one after the first is a move
    seller: str | None = None  # whose stream it is, where the caller said

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "url": self.url,
            "seller": self.seller,
            "worker": self.worker,
            "placement": self.state,
            "moves": max(0, self.placements - 1),
            "added_at": self.added_at,
        }


@dataclass
class WorkerRecord:
    """One worker: its room and the streams placed on it."""

    name: str
    capacity: int
    alive: bool = True
    streams: set[str] = field(default_factory=set)

    @property
    def load(self) -> float:
        return len(self.streams) / self.capacity if self.capacity else 1.0

    @property
    def room(self) -> int:
        return self.capacity - len(self.streams)


@dataclass(frozen=True)
class Move:
    """Start ``stream`` on ``to`` (None: nowhere has room); stop it on ``source`` when set and alive."""

    stream: str
    url: str
    source: str | None
    to: str | None
    seller: str | None = None


class Registry:
    """Streams and workers, least-loaded placement, rebalancing and failover; thread-safe.

    Args:
        path: SQLite file the registry is written through to (None: memory only).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.streams: dict[str, StreamRecord] = {}
        self.workers: dict[str, WorkerRecord] = {}
        self._lock = threading.RLock()
        self.db: sqlite3.Connection | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a power cut may lose the last changes, never corrupt the file; the scheduler
            # reconciles the registry with what the workers report on its next health check.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(
                """
                CREATE TABLE IF NOT EXISTS streams (
                    id TEXT PRIMARY KEY, url TEXT NOT NULL, worker TEXT, state TEXT NOT NULL,
                    added_at REAL NOT NULL, placements INTEGER NOT NULL DEFAULT 0, seller TEXT);
                CREATE TABLE IF NOT EXISTS workers (
                    name TEXT PRIMARY KEY, capacity INTEGER NOT NULL, alive INTEGER NOT NULL);
                """
            )
            # A registry written before streams had sellers: the column is added, empty.
            if "seller" not in {row[1] for row in self.db.execute("PRAGMA table_info(streams)")}:
                self.db.execute("ALTER TABLE streams ADD COLUMN seller TEXT")
                self.db.commit()
            self._load()

    # --- persistence --------------------------------------------------------------------

    def _load(self) -> None:
        assert self.db is not None
        for name, capacity, alive in self.db.execute("SELECT name, capacity, alive FROM workers"):
            self.workers[name] = WorkerRecord(name, int(capacity), bool(alive))
        for sid, url, worker, state, added_at, placements, seller in self.db.execute(
            "SELECT id, url, worker, state, added_at, placements, seller FROM streams"
        ):
            self.streams[sid] = StreamRecord(sid, url, worker, state, float(added_at), int(placements), seller)
            if worker in self.workers:
                self.workers[worker].streams.add(sid)

    def _save(self, streams: list[str] = (), workers: list[str] = ()) -> None:  # type: ignore[assignment]
        if self.db is None:
            return
        with self.db:
            for sid in streams:
                s = self.streams.get(sid)
                if s is None:
                    self.db.execute("DELETE FROM streams WHERE id = ?", (sid,))
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO streams (id, url, worker, state, added_at, placements, seller) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (s.id, s.url, s.worker, s.state, s.added_at, s.placements, s.seller),
                    )
            for name in workers:
                w = self.workers.get(name)
                if w is None:
                    self.db.execute("DELETE FROM workers WHERE name = ?", (name,))
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO workers (name, capacity, alive) VALUES (?, ?, ?)",
                        (w.name, w.capacity, int(w.alive)),
                    )

    def close(self) -> None:
        with self._lock:
            if self.db is not None:
                self.db.close()
                self.db = None

    # --- placement ----------------------------------------------------------------------

    def _least_loaded(self, exclude: str | None = None) -> WorkerRecord | None:
        """The alive worker with room and the lowest load (ties: most room, then name)."""
        best = None
        for w in self.workers.values():
            if not w.alive or w.room <= 0 or w.name == exclude:
                continue
            if best is None or (w.load, -w.room, w.name) < (best.load, -best.room, best.name):
                best = w
        return best

    def _assign(self, s: StreamRecord, to: WorkerRecord | None) -> Move:
        source = s.worker
        if source in self.workers:
            self.workers[source].streams.discard(s.id)  # type: ignore[index]
        if to is None:
            s.worker, s.state = None, PENDING
        else:
            to.streams.add(s.id)
            if source != to.name:
                s.placements += 1
            s.worker, s.state = to.name, RUNNING
        alive_source = source if source in self.workers and self.workers[source].alive else None  # type: ignore[index]
        return Move(s.id, s.url, alive_source, s.worker, s.seller)

    def add_stream(self, stream_id: str, url: str, seller: str | None = None) -> Move:
        """Register a stream (``seller``: whose it is, where known) and place it on the least-loaded
        worker with room (or leave it pending)."""
        with self._lock:
            if stream_id in self.streams:
                raise RegistryError(f"stream {stream_id!r} already exists")
            s = self.streams[stream_id] = StreamRecord(stream_id, url, seller=seller)
            move = self._assign(s, self._least_loaded())
            self._save([stream_id], [move.to] if move.to else [])
            return move

    def remove_stream(self, stream_id: str) -> str | None:
        """Forget a stream; returns the worker it ran on (to stop it there).

        Room it frees is not used here: call ``place_pending`` afterwards.
        """
        with self._lock:
            s = self.streams.pop(stream_id, None)
            if s is None:
                raise RegistryError(f"no stream {stream_id!r}")
            if s.worker in self.workers:
                self.workers[s.worker].streams.discard(stream_id)  # type: ignore[index]
            self._save([stream_id])
            return s.worker

    def place_pending(self) -> list[Move]:
        """Place waiting streams where room has appeared, oldest first."""
        with self._lock:
            moves = []
            for s in sorted(self.streams.values(), key=lambda s: s.added_at):
                if s.state != PENDING:
                    continue
                to = self._least_loaded()
                if to is None:
                    break
                moves.append(self._assign(s, to))
            self._save([m.stream for m in moves])
            return moves

    def join(self, name: str, capacity: int) -> list[Move]:
        """A worker joins (or comes back): waiting streams go to it, then the fleet is rebalanced."""
        if capacity < 1:
            raise RegistryError(f"capacity must be at least 1, got {capacity}")
        with self._lock:
            w = self.workers.get(name)
            if w is None:
                w = self.workers[name] = WorkerRecord(name, capacity)
            else:
                w.capacity, w.alive = capacity, True
            self._save(workers=[name])
            return self.place_pending() + self.rebalance()

    def rebalance(self) -> list[Move]:
        """Move streams from the most to the least loaded workers until no move would narrow the gap."""
        with self._lock:
            moves = []
            while True:
                alive = [w for w in self.workers.values() if w.alive]
                if len(alive) < 2:
                    break
                hi = max(alive, key=lambda w: (w.load, w.name))
                lo = self._least_loaded(exclude=hi.name)
                if lo is None or not hi.streams:
                    break
                # Move one stream only when it leaves the pair closer in load than before.
                after_hi = (len(hi.streams) - 1) / hi.capacity
                after_lo = (len(lo.streams) + 1) / lo.capacity
                if max(after_hi, after_lo) >= hi.load - 1e-9:
                    break
                newest = max(hi.streams, key=lambda sid: (self.streams[sid].added_at, sid))
                moves.append(self._assign(self.streams[newest], lo))
            self._save([m.stream for m in moves])
            return moves

    def lost(self, name: str) -> list[Move]:
        """A worker died: mark it and place each of its streams elsewhere (pending where no room)."""
        with self._lock:
            w = self.workers.get(name)
            if w is None or not w.alive:
                return []
            w.alive = False
            moves = [self._assign(self.streams[sid], self._least_loaded()) for sid in sorted(w.streams)]
            self._save([m.stream for m in moves], [name])
            return moves

    def leave(self, name: str) -> list[Move]:
        """A worker leaves on purpose: like ``lost``, then it is forgotten."""
        with self._lock:
            moves = self.lost(name)
            self.workers.pop(name, None)
            self._save(workers=[name])
            return moves

    # --- views --------------------------------------------------------------------------

    def stream(self, stream_id: str) -> dict:
        """One stream's record as plain data."""
        with self._lock:
            return self.streams[stream_id].to_dict()

    def assigned(self, worker: str) -> dict[str, Move]:
        """The streams placed on ``worker``, id -> the move that starts it there (what it should be running)."""
        with self._lock:
            w = self.workers.get(worker)
            if w is None:
                return {}
            return {sid: Move(sid, self.streams[sid].url, None, worker, self.streams[sid].seller) for sid in w.streams}

    def snapshot(self) -> dict:
        """Streams and workers as plain data (for the API, tests and the benchmark)."""
        with self._lock:
            return {
                "streams": {sid: s.to_dict() for sid, s in sorted(self.streams.items())},
                "workers": {
                    n: {"capacity": w.capacity, "alive": w.alive, "streams": sorted(w.streams)}
                    for n, w in sorted(self.workers.items())
                },
            }

    def imbalance(self) -> float:
        """Most minus least loaded alive worker, in streams per unit of capacity (0 = even)."""
        with self._lock:
            loads = [w.load for w in self.workers.values() if w.alive]
            return max(loads) - min(loads) if loads else 0.0
