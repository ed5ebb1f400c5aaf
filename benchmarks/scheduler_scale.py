"""The fleet scheduler through one simulated day of 60,000 streams.

Drives the scheduler's registry (``pipeline.fleet.registry``, persisted in SQLite exactly as the
scheduler actor runs it) with simulated workers: no Ray, no video, only placement decisions.

The day, with a fixed seed:
- arrivals: a non-homogeneous Poisson process whose rate follows a diurnal curve (quiet at
  04:00, peak at 20:00, peak/mean 1.6), 60,000 streams in all;
- durations: log-normal, median 60 min, sigma 0.8, clipped to 5 min - 8 h;
- workers: capacity 50 streams each (the measured `live_capacity` of one 2-core worker at
  1 fps); the fleet starts at 80 workers, 60 more join at 16:00 ahead of the evening peak,
  and 4 workers die during the day (their streams are moved).

Printed as one JSON line: scheduling decisions per second (place, remove, move; wall clock),
placement time p50/p99, imbalance between workers (max - min streams per worker, sampled every
simulated 5 minutes), peak concurrency, and the same day placed by round-robin as the baseline.
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import report

from pipeline.fleet.registry import Registry

DAY = 86_400.0


def diurnal(t: np.ndarray) -> np.ndarray:
    """Relative arrival rate over the day (mean 1): a cosine with its peak at 20:00."""
    return 1.0 + 0.6 * np.cos(2 * np.pi * (t - 20 * 3600) / DAY)


def simulate_day(streams: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (sorted) and durations of ``streams`` streams."""
    rng = np.random.default_rng(seed)
    # Thinning: draw uniformly, keep in proportion to the diurnal rate.
    arrivals: list[float] = []
    while len(arrivals) < streams:
        t = rng.uniform(0, DAY, streams)
        keep = rng.uniform(0, 1.6, streams) < diurnal(t)
        arrivals.extend(t[keep].tolist())
    at = np.sort(np.asarray(arrivals[:streams]))
    durations = np.clip(rng.lognormal(np.log(3600), 0.8, streams), 300, 8 * 3600)
    return at, durations


def run(
    streams: int, seed: int, capacity: int, start_workers: int, join_workers: int, deaths: int, db: Path | None
) -> dict:
    at, durations = simulate_day(streams, seed)
    registry = Registry(db)
    for w in range(start_workers):
        registry.join(f"w{w:03d}", capacity)
    events: list[tuple[float, int, str, str]] = []  # (time, order, kind, arg)
    for i, (t, d) in enumerate(zip(at, durations, strict=True)):
        events.append((t, 1, "arrive", f"s{i}"))
        events.append((t + d, 0, "leave", f"s{i}"))
    events.append((16 * 3600, 0, "join", ""))
    rng = np.random.default_rng(seed + 1)
    for t in sorted(rng.uniform(6 * 3600, 22 * 3600, deaths)):
        events.append((t, 0, "die", ""))
    for t in np.arange(0, DAY, 300):
        events.append((float(t), 2, "sample", ""))
    heapq.heapify(events)
    place_s: list[float] = []
    decisions = 0
    imbalance: list[int] = []
    waiting: list[int] = []
    peak = concurrent = 0
    placed_time = 0.0
    started = time.perf_counter()
    while events:
        t, _, kind, arg = heapq.heappop(events)
        if t > DAY and kind != "leave":
            continue
        t0 = time.perf_counter()
        if kind == "arrive":
            registry.add_stream(arg, f"rtmp://ingest/{arg}")
            dt = time.perf_counter() - t0
            place_s.append(dt)
            placed_time += dt
            decisions += 1
            concurrent += 1
            peak = max(peak, concurrent)
        elif kind == "leave":
            registry.remove_stream(arg)
            decisions += 1 + len(registry.place_pending())
            concurrent -= 1
        elif kind == "join":
            for w in range(join_workers):
                decisions += len(registry.join(f"j{w:03d}", capacity))
        elif kind == "die":
            alive = sorted(n for n, w in registry.workers.items() if w.alive)
            decisions += len(registry.lost(alive[int(rng.integers(len(alive)))]))
        elif kind == "sample":
            loads = [len(w.streams) for w in registry.workers.values() if w.alive]
            imbalance.append(max(loads) - min(loads))
            waiting.append(sum(s.worker is None for s in registry.streams.values()))
    wall = time.perf_counter() - started
    registry.close()
    p = np.asarray(place_s) * 1000
    return {
        "decisions": decisions,
        "decisions_per_s": round(decisions / wall, 1),
        "placement_ms_p50": round(float(np.percentile(p, 50)), 3),
        "placement_ms_p99": round(float(np.percentile(p, 99)), 3),
        "imbalance_streams_mean": round(float(np.mean(imbalance)), 2),
        "imbalance_streams_max": int(np.max(imbalance)),
        "peak_concurrent_streams": peak,
        "waiting_for_room_max": max(waiting),
        "wall_s": round(wall, 1),
    }


def round_robin_imbalance(streams: int, seed: int, capacity: int, start_workers: int, join_workers: int) -> dict:
    """Baseline: the same day placed round-robin (no load awareness, no moves, no failures)."""
    at, durations = simulate_day(streams, seed)
    loads = np.zeros(start_workers + join_workers, np.int64)
    live = start_workers
    where: dict[int, int] = {}
    events = [(t, 1, i) for i, t in enumerate(at)]
    events += [(t + d, 0, i) for i, (t, d) in enumerate(zip(at, durations, strict=True))]
    events += [(float(t), 2, -1) for t in np.arange(0, DAY, 300)]
    events.sort()
    nxt = 0
    imbalance = []
    for t, kind, i in events:
        if t >= 16 * 3600 and live == start_workers:
            live += join_workers
        if kind == 1:
            w = nxt % live
            nxt += 1
            where[i] = w
            loads[w] += 1
        elif kind == 0:
            loads[where.pop(i)] -= 1
        elif t <= DAY:
            imbalance.append(int(loads[:live].max() - loads[:live].min()))
    return {
        "imbalance_streams_mean": round(float(np.mean(imbalance)), 2),
        "imbalance_streams_max": int(np.max(imbalance)),
        "over_capacity_max": int(max(0, loads.max() - capacity)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=60_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--capacity", type=int, default=50, help="streams per worker")
    p.add_argument("--workers", type=int, default=80, help="workers at the start of the day")
    p.add_argument("--join", type=int, default=60, help="workers joining at 16:00")
    p.add_argument("--deaths", type=int, default=4, help="workers that die during the day")
    p.add_argument("--memory", action="store_true", help="registry in memory only (no SQLite)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = None if args.memory else Path(tmp) / "registry.sqlite"
        fig = run(args.streams, args.seed, args.capacity, args.workers, args.join, args.deaths, db)
    base = round_robin_imbalance(args.streams, args.seed, args.capacity, args.workers, args.join)
    report(
        {
            "benchmark": "scheduler_scale",
            "streams_per_day": args.streams,
            "workers": f"{args.workers}+{args.join} x {args.capacity} streams, {args.deaths} die",
            "durations": "log-normal median 60 min sigma 0.8, 5 min - 8 h",
            "arrivals": "Poisson, diurnal cosine peak 20:00, peak/mean 1.6",
            "persisted": db is not None,
            **fig,
            "baseline_round_robin": base,
        }
    )


if __name__ == "__main__":
    main()
