"""Alerts: the record of formats.md section 3, its sinks, and the evidence image a reviewer judges.

Sinks are small context managers behind the ``AlertSink`` protocol: JSON Lines (flushed and
fsynced per alert, so an interrupted run keeps every alert written), an SQLite store, and an
evidence writer that draws the crop beside its nearest authentic reference.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Protocol

import cv2
import numpy as np

KIND = "suspected_fake"
REQUIRED = ("stream", "t", "frame", "brand", "box", "score", "kind")


class AlertFormatError(ValueError):
    """An alert line does not follow formats.md section 3."""


def seller_id(text: str | None) -> str | None:
    """A stream's seller id as given (surrounding spaces dropped), None for none; raises
    ``ValueError`` for one that cannot name a seller in an alert line."""
    if text is None:
        return None
    seller = text.strip()
    if not seller or len(seller) > 128 or any(c in seller for c in "\0\r\n"):
        raise ValueError("a seller id must be 1-128 characters on one line, such as seller-17")
    return seller


@dataclass(frozen=True)
class Alert:
    """One suspected counterfeit (formats.md section 3)."""

    stream: str
    t: float
    frame: int
    brand: str
    box: tuple[float, float, float, float]
    score: float
    kind: str = KIND
    id: str = ""
    track: int | None = None
    evidence: str | None = None
    matches: tuple[dict, ...] = ()
    model: str | None = None
    # The stream's seller, where one was given, and whether ``brand.json`` names it as authorized
    # to sell this brand: a reviewer weighs an alert on an authorized reseller's stream differently.
    seller: str | None = None
    authorized_seller: bool | None = None
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"expected a 4-number box, got {len(self.box)}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must lie in [0, 1], got {self.score}")
        if not self.id:
            # Stable across redelivery and re-runs: the same stream, track and frame give the same id.
            key = f"{self.stream}|{self.track}|{self.frame}|{self.brand}"
            object.__setattr__(self, "id", hashlib.sha256(key.encode()).hexdigest()[:20])

    def to_json(self) -> dict:
        """The JSON object of one alert line (optional fields only where set)."""
        d = asdict(self)
        d["box"] = [round(float(v), 1) for v in self.box]
        d["t"] = round(float(self.t), 3)
        d["score"] = round(float(self.score), 4)
        d["matches"] = list(self.matches)
        return {k: v for k, v in d.items() if v not in (None, "", [])}

    @classmethod
    def from_json(cls, obj: dict, where: str = "") -> Alert:
        """Parse one alert object, raising ``AlertFormatError`` naming ``where`` on bad input."""
        if not isinstance(obj, dict):
            raise AlertFormatError(f"{where}: expected a JSON object")
        missing = [k for k in REQUIRED if k not in obj]
        if missing:
            raise AlertFormatError(f"{where}: missing field(s) {', '.join(missing)}")
        try:
            box = tuple(float(v) for v in obj["box"])
            if len(box) != 4:
                raise ValueError
            known = {k: obj[k] for k in ("id", "track", "evidence", "model", "seller", "created_at") if k in obj}
            if "authorized_seller" in obj:
                if not isinstance(obj["authorized_seller"], bool):
                    raise ValueError("authorized_seller must be true or false")
                known["authorized_seller"] = obj["authorized_seller"]
            return cls(
                stream=str(obj["stream"]),
                t=float(obj["t"]),
                frame=int(obj["frame"]),
                brand=str(obj["brand"]),
                box=box,
                score=float(obj["score"]),  # type: ignore[arg-type]
                kind=str(obj["kind"]),
                matches=tuple(obj.get("matches", ())),
                **known,
            )
        except (TypeError, ValueError) as exc:
            raise AlertFormatError(f"{where}: bad field value ({exc or 'box must be 4 numbers'})") from None


def read_alerts(path: str | Path) -> list[Alert]:
    """Read a JSON Lines alert file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise AlertFormatError(f"{path}: file not found")
    alerts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AlertFormatError(f"{path}:{n}: not JSON ({exc.msg})") from None
        alerts.append(Alert.from_json(obj, f"{path}:{n}"))
    return alerts


class AlertSink(Protocol):
    """Receives alerts; must not lose one it has accepted."""

    def write(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends alerts to a JSON Lines file, flushed and fsynced per alert."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] | None = self.path.open("a", encoding="utf-8")

    def write(self, alert: Alert) -> None:
        assert self._f is not None, "sink is closed"
        self._f.write(json.dumps(alert.to_json(), ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteStore:
    """An SQLite table of alerts (WAL), keyed by alert id, so a redelivered alert is stored once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db: sqlite3.Connection | None = sqlite3.connect(str(self.path), check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, stream TEXT, t REAL, brand TEXT, "
            "score REAL, record TEXT NOT NULL, created_at TEXT)"
        )
        self.db.commit()

    def write(self, alert: Alert) -> None:
        assert self.db is not None, "store is closed"
        self.db.execute(
            "INSERT OR IGNORE INTO alerts (id, stream, t, brand, score, record, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (alert.id, alert.stream, alert.t, alert.brand, alert.score, json.dumps(alert.to_json()), alert.created_at),
        )
        self.db.commit()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _label(img: np.ndarray, text: str, y: int, scale: float = 0.5) -> None:
    # A dark halo from 1-px copies shifted around the text: OpenCV spaces thicker text wider, so
    # one thick dark copy drifts away from the white one along the line.
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)):
        cv2.putText(img, text, (6 + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def evidence_image(
    crop: np.ndarray,
    reference: np.ndarray | None,
    brand: str,
    score: float,
    similarity: float,
    where: str,
    aligned: np.ndarray | None = None,
    note: str = "",
) -> np.ndarray:
    """The stream crop beside the nearest authentic reference, captioned (RGB).

    With ``aligned`` (verifier mode: the crop with the reference's outline laid over it) a third
    panel shows where the mark leaves the brand's shape. A ``note`` (such as the stream's seller
    being authorized for the brand) gets a caption line of its own.
    """
    side = 256
    left = cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)
    if reference is None:
        right = np.full((side, side, 3), 128, np.uint8)
        _label(right, "reference not available", side // 2)
    else:
        h, w = reference.shape[:2]
        s = side / max(h, w)
        ref = cv2.resize(reference, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        right = np.full((side, side, 3), 255, np.uint8)
        y0, x0 = (side - ref.shape[0]) // 2, (side - ref.shape[1]) // 2
        right[y0 : y0 + ref.shape[0], x0 : x0 + ref.shape[1]] = ref
    gap = np.full((side, 4, 3), 40, np.uint8)
    panels = [left, gap, right]
    caption = f"stream crop ({where})  |  nearest authentic reference"
    if aligned is not None:
        panels += [gap, cv2.resize(aligned, (side, side), interpolation=cv2.INTER_NEAREST)]
        caption += "  |  reference aligned onto the mark"
    panel = np.concatenate(panels, axis=1)
    header = np.full((76 if note else 54, panel.shape[1], 3), 30, np.uint8)
    _label(header, f"suspected fake of '{brand}'  score {score:.2f}  similarity {similarity:.2f}", 20)
    _label(header, caption, 44, 0.45)
    if note:
        _label(header, note, 66, 0.45)
    return np.concatenate([header, panel], axis=0)


class EvidenceWriter:
    """Writes one JPEG of evidence per alert into a folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, alert_id: str, image_rgb: np.ndarray) -> Path:
        path = self.folder / f"{alert_id}.jpg"
        tmp = path.with_suffix(".tmp.jpg")
        cv2.imwrite(str(tmp), image_rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        os.replace(tmp, path)
        return path


_REVIEW_CSS = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222 }
h1 small, h2 small { color: #777; font-weight: normal }
.grid { display: flex; flex-wrap: wrap; gap: 12px }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px; width: 420px }
.card img { max-width: 100%; display: block }
.none { height: 80px; background: #f3f3f3; color: #888; display: flex; align-items: center; justify-content: center }
.meta { margin-top: 6px; line-height: 1.5 }
.bar { height: 6px; background: #eee; border-radius: 3px; margin: 4px 0 }
.bar span { display: block; height: 6px; background: #c0392b; border-radius: 3px }
small { color: #666 }
.seller { display: inline-block; background: #e8f4ea; color: #1e6b34; border-radius: 3px; padding: 0 6px }
"""


def counted(n: int, noun: str) -> str:
    """``1 alert``, ``2 alerts``: a count and its noun, for people to read."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def media_clock(t: float) -> str:
    """Media time as m:ss.s (h:mm:ss.s past an hour)."""
    minutes, seconds = divmod(max(t, 0.0), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{seconds:04.1f}" if hours else f"{minutes}:{seconds:04.1f}"


def review_html(
    alerts: Sequence[Alert], image_src: Callable[[Alert], str | None], title: str = "fakewatch alerts"
) -> str:
    """One HTML page a reviewer reads ``alerts`` from: per stream and in time order, each alert's
    evidence image (at ``image_src(alert)``, None where there is none) with its time, brand, score
    and nearest references."""
    esc = html.escape
    streams: dict[str, list[Alert]] = {}
    for a in sorted(alerts, key=lambda a: (a.stream, a.t)):
        streams.setdefault(a.stream, []).append(a)

    def card(a: Alert) -> str:
        src = image_src(a)
        if src is not None:
            src = esc(src)
            image = f"<a href='{src}'><img src='{src}' loading='lazy' alt='evidence for {esc(a.id)}'></a>"
        else:
            image = "<div class='none'>no evidence image</div>"
        refs = ", ".join(
            f"{esc(str(m.get('brand', '?')))} {float(m.get('similarity', 0.0)):.2f}"
            for m in a.matches
            if isinstance(m, dict)
        )
        pct = round(100 * a.score)
        seller = ""
        if a.seller is not None:
            seller = (
                f"<br><span class='seller'>seller {esc(a.seller)}: authorized for {esc(a.brand)}</span>"
                if a.authorized_seller
                else f"<br><small>seller {esc(a.seller)}</small>"
            )
        return (
            f"<div class='card' id='{esc(a.id)}'>{image}<div class='meta'>"
            f"<b>{esc(a.brand)}</b> at {media_clock(a.t)} (frame {a.frame})"
            f"<div class='bar'><span style='width:{pct}%'></span></div>suspicion {a.score:.2f}"
            + (f" &middot; track {a.track}" if a.track is not None else "")
            + seller
            + (f"<br><small>nearest references: {refs}</small>" if refs else "")
            + f"<br><small>id {esc(a.id)}</small></div></div>"
        )

    sections = "".join(
        f"<h2>{esc(stream)} <small>{counted(len(items), 'alert')}</small></h2>"
        f"<div class='grid'>{''.join(card(a) for a in items)}</div>"
        for stream, items in streams.items()
    )
    brands = sorted({a.brand for a in alerts})
    body = (
        f"<h1>{esc(title)}</h1><p>{counted(len(alerts), 'alert')} in {counted(len(streams), 'stream')}"
        + (f"; brands: {esc(', '.join(brands))}" if brands else "")
        + ". Each image shows the stream's crop, the brand's nearest authentic reference and, where the"
        " verifier ran, that reference aligned onto the mark.</p>" + (sections or "<p>No alerts.</p>")
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{_REVIEW_CSS}</style></head><body>{body}</body></html>"
    )


def review_page(alerts: Sequence[Alert], path: str | Path, title: str = "fakewatch alerts") -> Path:
    """Write ``review_html`` of ``alerts`` to ``path`` (atomically).

    Evidence images are linked relative to the page, not copied, so the page stays small and the
    folder holding both can move. Evidence paths are read as the run wrote them (relative ones
    from the working directory).
    """
    path = Path(path)

    def relative(a: Alert) -> str | None:
        if not a.evidence or not Path(a.evidence).is_file():
            return None
        return Path(os.path.relpath(Path(a.evidence).resolve(), path.parent.resolve())).as_posix()

    page = review_html(alerts, relative, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
