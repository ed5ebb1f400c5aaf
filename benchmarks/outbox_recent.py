"""Reading the newest alerts from a long-running worker's outbox.

The daemon's ``GET /alerts``, ``GET /review`` and ``GET /evidence/ID.jpg`` each read the newest
alerts (of one stream, with ``?stream=``) from its SQLite outbox, which keeps every alert. The
outbox is filled with ``--alerts`` records over ``--streams`` streams (inserted in one transaction:
this measures reading, not the fsync per alert of writing), then ``Outbox.recent`` is timed, of
all streams and of one, with the shipped schema and, as the baseline in the same run, with its
``alerts_recent`` and ``alerts_stream`` indexes dropped (the schema before them).

Printed as one JSON line: milliseconds per query (median), both ways.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import report

from pipeline.outbox import Outbox


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Median milliseconds of ``fn()`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alerts", type=int, default=500_000, help="alerts in the outbox")
    p.add_argument("--streams", type=int, default=5_000, help="streams they came from")
    p.add_argument("--repeat", type=int, default=20, help="queries timed per figure")
    args = p.parse_args()
    record = json.dumps({"stream": "s", "t": 1.0, "frame": 30, "brand": "acme", "box": [1, 2, 3, 4], "score": 0.8})
    with tempfile.TemporaryDirectory() as tmp, Outbox(Path(tmp) / "outbox.sqlite", sinks=()) as box:
        assert box.db is not None
        with box.db:
            box.db.executemany(
                "INSERT INTO alerts (id, stream, t, brand, record, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                ((f"a{i}", f"s{i % args.streams}", 1.0, "acme", record, 1e9 + i) for i in range(args.alerts)),
            )
        stream = f"s{args.streams // 2}"
        figure = {
            "benchmark": "outbox_recent",
            "alerts": args.alerts,
            "streams": args.streams,
            "recent_100_ms": timed(lambda: box.recent(100), args.repeat),
            "recent_100_of_one_stream_ms": timed(lambda: box.recent(100, stream), args.repeat),
        }
        box.db.execute("DROP INDEX alerts_recent")
        box.db.execute("DROP INDEX alerts_stream")
        figure["baseline_no_index_recent_100_ms"] = timed(lambda: box.recent(100), max(3, args.repeat // 4))
        figure["baseline_no_index_recent_100_of_one_stream_ms"] = timed(
            lambda: box.recent(100, stream), max(3, args.repeat // 4)
        )
    report(figure)


if __name__ == "__main__":
    main()
