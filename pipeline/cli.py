"""The ``fakewatch`` command line: replay recorded streams, manage gallery indexes, evaluate."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__
from pipeline.progress import Progress

if TYPE_CHECKING:
    from pipeline.alerts import Alert


class UserError(Exception):
    """A mistake in the command or its inputs: reported as one line, exit status 2."""


def _fail(message: str, code: int = 2) -> int:
    print(f"fakewatch: error: {message}", file=sys.stderr)
    return code


# --- gallery --------------------------------------------------------------------------------


def _open_embedder(config_path: str | None):  # type: ignore[no-untyped-def]
    from pipeline.config import Config
    from pipeline.infer.embedder import OnnxEmbedder

    cfg = Config.load(config_path)
    return cfg, OnnxEmbedder(cfg.model_path("embedder"), cfg.models.providers, threads=cfg.models.threads)


def cmd_gallery(args: argparse.Namespace) -> int:
    from pipeline.alerts import counted
    from pipeline.gallery.index import GalleryIndex

    if args.action == "stats":
        with GalleryIndex.open(args.index) as idx:
            stats = idx.stats()
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            print(
                f"{stats['path']}: {counted(stats['brands'], 'brand')}, {counted(stats['images'], 'image')}, "
                f"{stats['vectors']} vectors ({stats['kind']}), model {stats['model']}, {stats['views']} views "
                f"per image with the mark at {stats['view_sizes'][0]:g}-{stats['view_sizes'][1]:g} px"
            )
            for brand, s in stats["per_brand"].items():
                named = ", ".join(s["authorized_sellers"])
                sellers = f"  authorized sellers: {named}" if named else ""
                title = f" ({s['title']})" if s["title"] != brand else ""
                print(
                    f"  {brand:<24} {s['images']:>4} images {s['vectors']:>6} vectors  threshold {s['threshold']:.3f}"
                    f"{title}{sellers}"
                )
        return 0
    cfg, emb = _open_embedder(args.config)
    with emb:
        if args.action == "build":
            with Progress("embedding gallery images", eager=False) as bar:
                idx = GalleryIndex.build(
                    args.gallery,
                    args.out,
                    emb,
                    emb.version,
                    views=cfg.gallery.views,
                    progress=bar.update,
                    view_sizes=cfg.gallery.view_sizes,
                )
            print(f"built {args.out}: {counted(len(idx.brands), 'brand')}, {len(idx)} vectors ({idx.info['kind']})")
            idx.close()
        elif args.action == "add":
            with GalleryIndex.open(args.index, emb.version) as idx:
                for folder in args.brand_dirs:
                    path = Path(folder)
                    if not path.is_dir():
                        raise UserError(f"brand folder not found: {path}")
                    n = idx.add_brand(path, emb)
                    print(f"enrolled {path.name}: {n} vectors")
        elif args.action == "remove":
            with GalleryIndex.open(args.index) as idx:
                for brand in args.brands:
                    n = idx.remove_brand(brand)
                    print(f"removed {brand}: {n} vectors")
    return 0


def resolve_index(gallery_or_index: str | Path, config_path: str | None = None) -> Path:
    """An index path for ``--gallery``: an index folder as is, a gallery folder built (cached)."""
    from pipeline.gallery.index import GalleryIndex

    path = Path(gallery_or_index)
    if (path / "index.json").is_file():
        # A gallery folder always holds a brand (build refuses an empty one); an index may have had
        # every brand removed, and then nothing can ever alert.
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads((path / "index.json").read_text())["vectors"] == 0:
                print(f"fakewatch: warning: {path} holds no brands, so nothing can alert", file=sys.stderr)
        return path
    if not path.is_dir():
        raise UserError(f"gallery not found: {path}")
    cfg, emb = _open_embedder(config_path)
    cache = path.parent / f".{path.name}.index"
    with emb:
        try:
            with GalleryIndex.open(cache, emb.version) as cached:
                # Built from the same files, with the views the configuration asks for.
                same = (cached.info["views"], cached.view_sizes) == (cfg.gallery.views, cfg.gallery.view_sizes)
                same = same and cached.records_sellers  # one cached before seller lists were read is stale
            if same and (path.stat().st_mtime_ns, _tree_stamp(path)) == _read_stamp(cache):
                return cache
        except Exception:
            pass
        with Progress(f"building index of {path.name}", eager=False) as bar:
            GalleryIndex.build(
                path,
                cache,
                emb,
                emb.version,
                views=cfg.gallery.views,
                progress=bar.update,
                view_sizes=cfg.gallery.view_sizes,
            ).close()
    (cache / "source.stamp").write_text(json.dumps([path.stat().st_mtime_ns, _tree_stamp(path)]))
    return cache


def _tree_stamp(folder: Path) -> int:
    return sum(p.stat().st_mtime_ns + p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _read_stamp(cache: Path) -> tuple[int, int] | None:
    try:
        a, b = json.loads((cache / "source.stamp").read_text())
        return (a, b)
    except (OSError, ValueError):
        return None


# --- replay --------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from pipeline.alerts import (
        AlertFormatError,
        AlertSink,
        EvidenceWriter,
        JsonlSink,
        SqliteStore,
        read_alerts,
        seller_id,
    )
    from pipeline.config import Config
    from pipeline.ingest.probe import probe
    from pipeline.ingest.source import FFmpegSource, Sampling
    from pipeline.spine import Spine, run_sources

    cfg = Config.load(args.config)
    try:
        sampling = Sampling.from_arg(
            args.sample or cfg.ingest.sample, cfg.ingest.skip_nonref, cfg.ingest.decoder_threads
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    alerts_path = Path(args.alerts)
    evidence_dir = Path(args.evidence) if args.evidence else alerts_path.with_name(alerts_path.stem + "_evidence")
    # Checked before the index is built: a run should not fail on its output after the long part.
    if alerts_path.suffix.lower() in (".sqlite", ".html"):
        raise UserError(
            f"--alerts {alerts_path}: give the JSON Lines file (alerts.jsonl); the SQLite store and the "
            "review page are written beside it"
        )
    _writable(alerts_path, "--alerts", folder=False)
    _writable(evidence_dir, "--evidence", folder=True)
    beside = (alerts_path, alerts_path.with_suffix(".sqlite"), _review_path(alerts_path))
    if evidence_dir.resolve() in {p.resolve() for p in beside}:
        raise UserError(f"--evidence {evidence_dir}: is where the run writes its alerts; give a folder of its own")
    try:
        seller = seller_id(args.seller)
    except ValueError as exc:
        raise UserError(f"--seller: {exc}") from None
    # Alerts are appended: a file that already holds something else would be left half alerts, and
    # the summary below lists only this run's alerts, counted from what the file held before.
    held = 0
    if alerts_path.is_file():
        try:
            held = len(read_alerts(alerts_path))
        except AlertFormatError as exc:
            raise UserError(
                f"--alerts: {exc}; alerts are appended to this file, so give a new one or one fakewatch wrote"
            ) from None
    index = resolve_index(args.gallery, args.config)
    sinks: list[AlertSink] = [JsonlSink(alerts_path), SqliteStore(alerts_path.with_suffix(".sqlite"))]
    videos = [Path(v) for v in args.videos]
    sources = []
    durations: dict[str, float | None] = {}
    results = {}
    bars: dict[str, Progress] = {}
    failed_early: dict[str, str] = {}
    for n, video in enumerate(videos):
        taken = durations.keys() | failed_early.keys()
        stream = video.stem if video.stem not in taken else f"{video.stem}-{n}"
        if video.is_dir():
            failed_early[stream] = f"{video}: is a folder; give the video files in it (such as {video}/*.mp4)"
            continue
        if not video.is_file():
            failed_early[stream] = f"{video}: file not found"
            continue
        durations[stream] = probe(video).duration
        sources.append(FFmpegSource(video, stream, sampling))
        bars[stream] = Progress(stream, durations[stream], position=len(bars), unit="s")
    t0 = time.perf_counter()
    if args.ray is not None:
        results = _replay_on_ray(
            args.ray, cfg, index, sources, sampling, sinks, evidence_dir, bars, alerts_path, seller
        )
        if results is None:
            return 130
        wall = time.perf_counter() - t0
        return _summary(results, failed_early, durations, wall, alerts_path, evidence_dir, held)
    stop = threading.Event()
    with Spine.from_config(cfg, index, sinks, EvidenceWriter(evidence_dir)) as spine:
        for src in sources:
            spine.set_seller(src.stream, seller)
        try:
            results = run_sources(
                spine,
                sources,
                policy="block",
                on_frame=lambda f: bars[f.stream].update(round(f.t, 1)),
                stop=stop,
            )
        except KeyboardInterrupt:
            stop.set()
            for bar in bars.values():
                bar.close()
            print(f"\ninterrupted: alerts written so far are in {alerts_path}", file=sys.stderr)
            if (review := _write_review(alerts_path)) is not None:
                print(f"review page: {review}", file=sys.stderr)
            return 130
    wall = time.perf_counter() - t0
    for bar in bars.values():
        bar.close()
    return _summary(results, failed_early, durations, wall, alerts_path, evidence_dir, held)


def _writable(path: Path, flag: str, folder: bool) -> None:
    """Raise a ``UserError`` saying why the run could not write ``path`` (a file, or a folder with
    ``folder``), where that shows before anything is written."""
    if path.exists() and path.is_dir() != folder:
        want = f"a file (such as {path / 'alerts.jsonl'})" if not folder else "a folder"
        raise UserError(f"{flag} {path}: is a {'folder' if path.is_dir() else 'file'}; expected {want}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise UserError(f"{flag} {path}: {parent} is not writable")
            return


def _replay_on_ray(address, cfg, index, sources, sampling, sinks, evidence_dir, bars, alerts_path, seller):  # type: ignore[no-untyped-def]
    """``replay --ray``: the clips spread over Ray actors; alerts written here as clips finish."""
    from pipeline.fleet import require_ray

    require_ray(local=not (address or cfg.ray.address))
    from pipeline.fleet.offline import replay_on_ray

    results = {}
    jobs = [(src.stream, Path(src.url)) for src in sources]
    try:
        for stream, outcome in replay_on_ray(cfg, index, jobs, sampling, evidence_dir, address or None, seller=seller):
            results[stream] = outcome.result
            for alert in outcome.alerts:
                for sink in sinks:
                    sink.write(alert)
            bars[stream].update(round(outcome.result.media_seconds, 1))
    except KeyboardInterrupt:
        print(f"\ninterrupted: alerts of finished files are in {alerts_path}", file=sys.stderr)
        return None
    finally:
        for bar in bars.values():
            bar.close()
        for sink in sinks:
            sink.close()
    return results


SHOWN_ALERTS = 20  # a run's alerts listed after its table; the review page shows every one


def _summary(results, failed_early, durations, wall, alerts_path, evidence_dir, held) -> int:  # type: ignore[no-untyped-def]
    """The run's table and its alerts (``held``: how many the alerts file held before the run)."""
    from pipeline.alerts import counted, read_alerts

    rows = []
    failed = 0
    for stream, msg in failed_early.items():
        print(f"fakewatch: error: {msg}", file=sys.stderr)
        rows.append((stream, "-", "-", "-", "failed"))
        failed += 1
    media_total = 0.0
    for stream, res in results.items():
        media = durations.get(stream) or res.media_seconds
        media_total += media or 0
        if res.error:
            print(f"fakewatch: error: {res.error}", file=sys.stderr)
            failed += 1
        rows.append(
            (
                stream,
                str(res.frames),
                str(res.alerts),
                f"{media:.1f}s" if media else "-",
                "failed" if res.error else "ok",
            )
        )
    print()
    header = ("stream", "frames", "alerts", "media", "status")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    speed = media_total / wall if wall > 0 else 0
    print(
        f"\n{counted(len(rows), 'file')}, {counted(sum(r.frames for r in results.values()), 'frame')}, "
        f"{counted(sum(r.alerts for r in results.values()), 'alert')} in {wall:.1f}s: {speed:.1f}x real time"
    )
    every = read_alerts(alerts_path) if alerts_path.exists() else None
    new = every[held:] if every is not None else []
    for a in new[:SHOWN_ALERTS]:
        seller = f" [seller {a.seller}: authorized]" if a.authorized_seller else ""
        print(
            f"  {a.stream} t={a.t:.1f}s frame {a.frame}: suspected fake of {a.brand} "
            f"(score {a.score:.2f}){seller} evidence {a.evidence}"
        )
    if len(new) > SHOWN_ALERTS:
        print(f"  ... and {len(new) - SHOWN_ALERTS} more")
    print(f"alerts: {alerts_path}  evidence: {evidence_dir}")
    if (review := _write_review(alerts_path, every)) is not None:
        print(f"review page: {review}")
    return 1 if failed else 0


def _review_path(alerts_path: Path) -> Path:
    """Where the review page of an alerts file goes: ``ALERTS_review.html`` beside it."""
    return alerts_path.with_name(f"{alerts_path.stem}_review.html")


def _write_review(alerts_path: Path, alerts: list[Alert] | None = None) -> Path | None:
    """The alerts file's review page (every alert in it, with its evidence), beside it; None
    when there is no alerts file yet. ``alerts``: the file's alerts where already read."""
    from pipeline.alerts import read_alerts, review_page

    if not alerts_path.exists():
        return None
    return review_page(
        alerts if alerts is not None else read_alerts(alerts_path),
        _review_path(alerts_path),
        title=f"fakewatch alerts: {alerts_path.name}",
    )


# --- entry point ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fakewatch", description="Flag suspected counterfeit marks in livestream video.")
    p.add_argument("--version", action="version", version=f"fakewatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="replay recorded streams and write alerts")
    r.add_argument("videos", nargs="+", help="video files")
    r.add_argument("--gallery", required=True, help="gallery folder or built index folder")
    r.add_argument(
        "--alerts",
        required=True,
        help="JSON Lines file the alerts are appended to (an SQLite store and a review page go beside it)",
    )
    r.add_argument("--sample", help="'keyframes', 'all' or frames per second (default: config)")
    r.add_argument("--evidence", help="folder for evidence JPEGs (default: beside the alerts file)")
    r.add_argument("--config", help="configuration YAML (default: configs/fakewatch.yaml)")
    r.add_argument(
        "--seller",
        help="the seller whose streams these are: alerts then say whether the brand's brand.json "
        "lists that seller in authorized_sellers",
    )
    r.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="spread the files over a Ray cluster (a local one when no address is given)",
    )
    r.set_defaults(func=cmd_replay)

    g = sub.add_parser("gallery", help="build and change gallery indexes")
    gs = g.add_subparsers(dest="action", required=True)
    b = gs.add_parser("build", help="embed a gallery folder into a new index")
    b.add_argument("gallery", help="gallery folder: one folder per brand, each with its reference images")
    b.add_argument("--out", required=True, help="index folder to write (replaced atomically)")
    b.add_argument("--config", help="configuration YAML (default: configs/fakewatch.yaml)")
    a = gs.add_parser("add", help="enrol brand folders into an index")
    a.add_argument("index", help="index folder (from 'fakewatch gallery build')")
    a.add_argument("brand_dirs", nargs="+", help="brand folders of reference images; a brand already there is replaced")
    a.add_argument("--config", help="configuration YAML (default: configs/fakewatch.yaml)")
    rm = gs.add_parser("remove", help="remove brands from an index")
    rm.add_argument("index", help="index folder (from 'fakewatch gallery build')")
    rm.add_argument("brands", nargs="+", help="brand ids to remove")
    rm.add_argument("--config", help="configuration YAML (default: configs/fakewatch.yaml)")
    st = gs.add_parser("stats", help="show what an index holds")
    st.add_argument("index", help="index folder (from 'fakewatch gallery build')")
    st.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    st.add_argument("--config", help="configuration YAML (default: configs/fakewatch.yaml)")
    g.set_defaults(func=cmd_gallery)
    sv = sub.add_parser("serve", help="run the worker daemon on live streams, with an HTTP API")
    sv.add_argument("--config", help="configuration YAML (default: configs/fakewatch.yaml)")
    sv.add_argument("--host", help="listen address (default: daemon.host, 127.0.0.1)")
    sv.add_argument("--port", type=int, help="listen port (default: daemon.port)")
    sv.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="spread streams over worker actors on a Ray cluster (a local one when no address is given)",
    )
    sv.set_defaults(func=cmd_serve)

    e = sub.add_parser("eval", help="evaluate on labelled clips (same as scripts/evaluate.py)")
    from pipeline.eval.cli import add_arguments

    add_arguments(e)
    e.set_defaults(func=cmd_eval)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    import uvicorn

    from pipeline.config import Config
    from pipeline.daemon.api import StreamService, create_app
    from pipeline.daemon.worker import Worker

    overrides = {k: v for k, v in (("daemon.host", args.host), ("daemon.port", args.port)) if v is not None}
    cfg = Config.load(args.config, overrides)
    # Before any stream or Ray actor starts: a taken port is the usual reason a second worker fails.
    _check_port(cfg.daemon.host, cfg.daemon.port)
    if not cfg.daemon.token:
        print(
            "fakewatch: warning: daemon.token is empty, so adding and removing streams is refused"
            " (set FAKEWATCH_DAEMON__TOKEN)",
            file=sys.stderr,
        )
    service: StreamService
    if args.ray is not None:
        from pipeline.fleet import require_ray

        require_ray(local=not (args.ray or cfg.ray.address))
        from pipeline.fleet.actors import Fleet

        fleet = Fleet(cfg, args.config).start(args.ray or None)
        service, what = fleet, f"fleet of {len(fleet.workers)} Ray workers"
    else:
        service, what = Worker.from_config(cfg).start(), "worker"

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def, override]
            # SIGTERM/SIGINT end serving; the worker then drains and the process exits 0
            # (uvicorn's own handling re-raises the signal, which would end the process with -15).
            def stop(*_: object) -> None:
                self.should_exit = True

            previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    server = Server(
        uvicorn.Config(create_app(service), host=cfg.daemon.host, port=cfg.daemon.port, log_level="warning")
    )
    print(f"fakewatch {what} listening on http://{cfg.daemon.host}:{cfg.daemon.port}", file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        service.shutdown()  # type: ignore[attr-defined]
    print(f"fakewatch {what} stopped", file=sys.stderr)
    return 0


def _check_port(host: str, port: int) -> None:
    """Raise a ``UserError`` when ``host:port`` cannot be listened on (taken, or not this machine's)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            hint = " (another worker? set --port or daemon.port)" if exc.errno == errno.EADDRINUSE else ""
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None


def cmd_eval(args: argparse.Namespace) -> int:
    from pipeline.eval.cli import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    from pipeline.alerts import AlertFormatError
    from pipeline.config import ConfigError
    from pipeline.eval.scoring import LabelError
    from pipeline.fleet import RayMissing
    from pipeline.gallery.index import GalleryError
    from pipeline.infer.models import ModelError
    from pipeline.ingest.source import IngestError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (
        UserError,
        ConfigError,
        GalleryError,
        ModelError,
        IngestError,
        AlertFormatError,
        LabelError,
        RayMissing,
    ) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("\nfakewatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (``fakewatch gallery stats INDEX | head``): not an error
        # of this run. Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        # A path the user gave that cannot be read or written (a folder where a file goes, no
        # permission, no such place): the system's reason, on one line. Errors without a path
        # are not the user's to fix and keep their traceback.
        if exc.filename is None:
            raise
        return _fail(f"{exc.filename}: {exc.strerror or exc}")


if __name__ == "__main__":
    sys.exit(main())
