"""Placement, rebalancing, failover and persistence of the stream registry (no Ray needed)."""

from __future__ import annotations

import pytest

from pipeline.fleet.registry import PENDING, RUNNING, Registry, RegistryError


def _loads(r: Registry) -> dict[str, int]:
    return {n: len(w.streams) for n, w in r.workers.items() if w.alive}


@pytest.mark.parametrize(
    ("capacities", "streams", "expected"),
    [
        ({}, 2, {}),  # no workers: everything waits
        ({"a": 4}, 0, {"a": 0}),
        ({"a": 4, "b": 4}, 5, {"a": 3, "b": 2}),
        ({"a": 2, "b": 6}, 6, {"a": 2, "b": 4}),  # least loaded relative to room
        ({"a": 1, "b": 1}, 3, {"a": 1, "b": 1}),  # the third waits
    ],
)
def test_placement_fills_the_least_loaded_worker(capacities, streams, expected):
    r = Registry()
    for name, cap in capacities.items():
        r.join(name, cap)
    moves = [r.add_stream(f"s{i}", f"rtmp://x/{i}") for i in range(streams)]
    assert _loads(r) == expected
    placed = sum(expected.values())
    assert sum(m.to is not None for m in moves) == placed
    assert sum(s.state == PENDING for s in r.streams.values()) == streams - placed


@pytest.mark.parametrize("bad", ["s0"])
def test_duplicate_and_unknown_streams_are_refused(bad):
    r = Registry()
    r.join("a", 2)
    r.add_stream(bad, "rtmp://x/0")
    with pytest.raises(RegistryError, match="already exists"):
        r.add_stream(bad, "rtmp://x/0")
    with pytest.raises(RegistryError, match="no stream"):
        r.remove_stream("nope")
    with pytest.raises(RegistryError, match="capacity"):
        r.join("b", 0)


def test_a_joining_worker_takes_waiting_streams_then_load_is_rebalanced():
    r = Registry()
    r.join("a", 4)
    for i in range(6):
        r.add_stream(f"s{i}", f"u{i}")
    assert _loads(r) == {"a": 4}
    moves = r.join("b", 4)
    assert _loads(r) == {"a": 3, "b": 3}
    # Two waiting streams placed, then one moved from a (stopped there, started on b).
    rebalanced = [m for m in moves if m.source == "a"]
    assert len(rebalanced) == 1 and rebalanced[0].to == "b"
    assert all(s.state == RUNNING for s in r.streams.values())


def test_lost_worker_streams_move_to_the_others_or_wait():
    r = Registry()
    for name in "abc":
        r.join(name, 3)
    for i in range(9):
        r.add_stream(f"s{i}", f"u{i}")
    victim = r.streams["s0"].worker
    assert victim is not None
    moved = sorted(r.workers[victim].streams)
    moves = r.lost(victim)
    assert sorted(m.stream for m in moves) == moved
    assert all(m.source is None for m in moves)  # nothing to stop on a dead worker
    # Two workers of 3 have no room for 3 more: they wait until room appears.
    assert sum(s.state == PENDING for s in r.streams.values()) == 3
    assert r.lost(victim) == []  # losing it twice changes nothing
    r.join("d", 3)
    assert sum(s.state == PENDING for s in r.streams.values()) == 0
    assert r.snapshot()["streams"][moved[0]]["moves"] == 1


def test_removing_a_stream_frees_room_for_a_waiting_one():
    r = Registry()
    r.join("a", 1)
    r.add_stream("s0", "u0")
    r.add_stream("s1", "u1")
    assert r.remove_stream("s0") == "a"
    assert [m.stream for m in r.place_pending()] == ["s1"]
    assert r.streams["s1"].worker == "a"


def test_registry_survives_a_restart(tmp_path):
    path = tmp_path / "registry.sqlite"
    r = Registry(path)
    r.join("a", 2)
    r.join("b", 2)
    for i in range(3):
        r.add_stream(f"s{i}", f"u{i}")
    r.lost("a")
    before = r.snapshot()
    r.close()
    again = Registry(path)
    assert again.snapshot() == before
    again.close()


def test_a_streams_seller_travels_with_every_move_and_survives_a_restart(tmp_path):
    path = tmp_path / "registry.sqlite"
    r = Registry(path)
    r.join("a", 2)
    assert r.add_stream("s0", "u0", seller="seller-17").seller == "seller-17"
    assert r.add_stream("s1", "u1").seller is None
    assert {sid: m.seller for sid, m in r.assigned("a").items()} == {"s0": "seller-17", "s1": None}
    moves = r.lost("a") + r.join("b", 2)
    assert {m.stream: m.seller for m in moves if m.to == "b"} == {"s0": "seller-17", "s1": None}
    r.close()
    again = Registry(path)
    assert again.streams["s0"].seller == "seller-17" and again.stream("s0")["seller"] == "seller-17"


def test_a_registry_from_before_sellers_gains_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "registry.sqlite"
    db = sqlite3.connect(str(path))
    db.executescript(
        """
        CREATE TABLE streams (id TEXT PRIMARY KEY, url TEXT NOT NULL, worker TEXT, state TEXT NOT NULL,
            added_at REAL NOT NULL, placements INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE workers (name TEXT PRIMARY KEY, capacity INTEGER NOT NULL, alive INTEGER NOT NULL);
        INSERT INTO streams VALUES ('old', 'rtmp://x/old', NULL, 'pending', 1.0, 0);
        """
    )
    db.commit()
    db.close()
    r = Registry(path)
    assert r.streams["old"].seller is None
    r.add_stream("new", "u", seller="s")
    r.close()
    assert Registry(path).streams["new"].seller == "s"


def test_imbalance_is_zero_when_even():
    r = Registry()
    assert r.imbalance() == 0.0
    r.join("a", 2)
    r.join("b", 2)
    r.add_stream("s0", "u0")
    assert r.imbalance() == 0.5
    r.add_stream("s1", "u1")
    assert r.imbalance() == 0.0


def test_missing_ray_is_one_clear_error_line(monkeypatch, capsys, tmp_path):
    import sys
    from pathlib import Path

    from pipeline.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    demo = Path(__file__).resolve().parents[2] / "demo"
    clip = next((demo / "clips").glob("*.mp4"))
    code = main(
        ["replay", str(clip), "--gallery", str(demo / "gallery"), "--alerts", str(tmp_path / "a.jsonl"), "--ray"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'fakewatch[ray]'" in err and "Traceback" not in err
