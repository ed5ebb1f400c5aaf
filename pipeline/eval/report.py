"""What a reviewer reads after an evaluation: the precision/recall curve, calibration of the
alert threshold, and a self-contained HTML report with pictures of every miss and false alert.
"""

from __future__ import annotations

import base64
import html
import subprocess
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.alerts import Alert
from pipeline.boxes import cut_crops
from pipeline.eval.misses import CAUSE_TEXT, MISS_CAUSES, Miss
from pipeline.eval.scoring import Clip, Score, false_alert_kind, score
from pipeline.ingest.ffmpeg_bin import ffmpeg_exe


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    precision: float
    recall: float
    alerts: int


def pr_curve(
    clips: Sequence[Clip], alerts: Sequence[Alert], enrolled: Collection[str] | None = None
) -> list[CurvePoint]:
    """Alert precision and event recall as the alert score threshold sweeps over the alerts' scores
    (recall over counterfeits of ``enrolled`` brands when given, as ``score`` counts them)."""
    thresholds = sorted({0.0, *(round(a.score, 4) for a in alerts)})
    points = []
    for thr in thresholds:
        kept = [a for a in alerts if a.score >= thr]
        s = score(clips, kept, enrolled)
        points.append(
            CurvePoint(
                thr,
                s.true_alerts / s.alerts if s.alerts else 1.0,
                s.caught / s.counterfeits if s.counterfeits else 0.0,
                s.alerts,
            )
        )
    return points


def calibrate(
    clips: Sequence[Clip], alerts: Sequence[Alert], target_precision: float, min_brand_alerts: int = 5
) -> dict:
    """The lowest score thresholds that reach ``target_precision``: global, and per brand where a
    brand has at least ``min_brand_alerts`` alerts.

    Returns ``{"alert_threshold": float, "brand_thresholds": {brand: float}}``.
    """

    def lowest(sub_alerts: Sequence[Alert], sub_clips: Sequence[Clip]) -> float | None:
        for p in pr_curve(sub_clips, sub_alerts):
            if p.alerts and p.precision >= target_precision:
                return p.threshold
        return None

    glob = lowest(alerts, clips)
    result: dict = {"alert_threshold": 1.0 if glob is None else glob, "brand_thresholds": {}}
    brands = sorted({a.brand for a in alerts})
    for brand in brands:
        mine = [a for a in alerts if a.brand == brand]
        if len(mine) < min_brand_alerts:
            continue
        thr = lowest(mine, clips)
        if thr is not None and thr != result["alert_threshold"]:
            result["brand_thresholds"][brand] = thr
    return result


def plot_pr_curve(points: Sequence[CurvePoint], operating: float, path: Path) -> None:
    """Write the precision/recall curve as a PNG with the operating threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    r = [p.recall for p in points]
    pr = [p.precision for p in points]
    ax.plot(r, pr, "-o", ms=3, color="#2b6cb0", label="alert score threshold sweep")
    op = min(points, key=lambda p: abs(p.threshold - operating)) if points else None
    if op is not None:
        ax.plot(
            [op.recall],
            [op.precision],
            "*",
            ms=16,
            color="#d53f8c",
            label=f"operating point (score >= {op.threshold:.2f})",
        )
    ax.set_xlabel("event recall")
    ax.set_ylabel("alert precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title("Alert precision against event recall")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def grab_frame(video: Path, index: int) -> np.ndarray | None:
    """Decode one frame (by presentation index) as RGB, or None."""
    out = subprocess.run(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(video),
            "-vf",
            f"select=eq(n\\,{index})",
            "-frames:v",
            "1",
            "-f",
            "image2pipe",
            "-vcodec",
            "png",
            "-",
        ],
        capture_output=True,
        timeout=60,
    )
    if out.returncode != 0 or not out.stdout:
        return None
    img = cv2.imdecode(np.frombuffer(out.stdout, np.uint8), cv2.IMREAD_COLOR)
    return None if img is None else np.ascontiguousarray(img[:, :, ::-1])


def _data_uri(image_rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", image_rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


def _file_uri(path: Path) -> str:
    data = path.read_bytes()
    kind = "png" if path.suffix.lower() == ".png" else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def _gallery_image(gallery: Path | None, brand: str) -> np.ndarray | None:
    if gallery is None or not (gallery / brand).is_dir():
        return None
    for p in sorted((gallery / brand).iterdir()):
        if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                return np.ascontiguousarray(img[:, :, ::-1])
    return None


def _side_by_side(crop: np.ndarray, ref: np.ndarray | None) -> np.ndarray:
    side = 200
    left = cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)
    right = np.full((side, side, 3), 235, np.uint8)
    if ref is not None:
        h, w = ref.shape[:2]
        s = side / max(h, w)
        r = cv2.resize(ref, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        y0, x0 = (side - r.shape[0]) // 2, (side - r.shape[1]) // 2
        right[y0 : y0 + r.shape[0], x0 : x0 + r.shape[1]] = r
    return np.concatenate([left, np.full((side, 4, 3), 40, np.uint8), right], axis=1)


def write_report(
    path: Path,
    metrics: dict,
    curve_png: Path,
    clips: Sequence[Clip],
    alerts: Sequence[Alert],
    result: Score,
    gallery: Path | None,
    causes: dict[tuple[str, int], Miss] | None = None,
    max_items: int = 200,
) -> None:
    """One self-contained HTML page: headline figures, the curve, then misses (with why each was
    missed, where ``causes`` from ``pipeline.eval.misses`` are given) and false alerts."""
    by_stream = {c.stream: c for c in clips}
    esc = html.escape
    spans = metrics.get("intervals_95") or {}

    def span(key: str) -> str:
        lo_hi = spans.get(key)
        return f"{lo_hi[0]} - {lo_hi[1]}" if lo_hi else ""

    rows = "".join(
        f"<tr><th>{esc(k.replace('_', ' '))}</th><td class='num'>{'-' if v is None else v}</td>"
        f"<td class='num'>{span(k)}</td></tr>"
        for k, v in metrics.items()
        if not isinstance(v, dict | list)
    )
    counts = "".join(
        f"<tr><th>{esc(k)}</th><td class='num'>{v}</td></tr>" for k, v in metrics.get("counts", {}).items()
    )
    kinds = "".join(
        f"<tr><th>{esc(k.replace('_', ' '))}</th><td class='num'>{v}</td></tr>"
        for k, v in metrics.get("false_alerts_by_kind", {}).items()
    )
    families = "".join(
        f"<tr><th>{esc(fam)}</th><td class='num'>{f['counterfeits']}</td><td class='num'>{f['caught']}</td>"
        f"<td class='num'>{'-' if f['event_recall'] is None else f['event_recall']}</td></tr>"
        for fam, f in metrics.get("recall_by_family", {}).items()
    )
    by_cause = metrics.get("misses_by_cause") or {}
    cause_rows = ""
    if by_cause:
        fams = [f for f in by_cause if f != "all"]
        head = "".join(f"<th class='num'>{esc(f)}</th>" for f in ["all", *fams])
        body = "".join(
            f"<tr><th>{esc(CAUSE_TEXT[c])}</th>"
            + "".join(f"<td class='num'>{by_cause[f].get(c, 0) or ''}</td>" for f in ["all", *fams])
            + "</tr>"
            for c in MISS_CAUSES
            if by_cause["all"].get(c)
        )
        cause_rows = f"<tr><th>missed because</th>{head}</tr>{body}"
    missed_cards = []
    for r in [o for o in result.objects if not o.caught][:max_items]:
        clip = by_stream[r.stream]
        obj = r.object
        mid = int(obj.frames[len(obj.frames) // 2])
        frame = grab_frame(clip.video, mid) if clip.video else None
        if frame is None:
            continue
        crop = cut_crops(frame, obj.box_near(mid)[None], 128)[0]
        img = _side_by_side(crop, _gallery_image(gallery, obj.brand))
        missed_cards.append(
            f"<figure class='card miss'><img alt='missed {esc(obj.brand)}' src='{_data_uri(img)}'>"
            f"<figcaption><b>missed</b> fake of <b>{esc(obj.brand)}</b> ({esc(obj.family or 'counterfeit')})"
            f"<br>clip {esc(r.stream)}, t={mid / clip.fps:.1f}s (frame {mid})"
            + (f"<br>{esc(miss.text())}" if causes and (miss := causes.get((r.stream, obj.id))) else "")
            + "</figcaption></figure>"
        )
    false_cards: list[str] = []
    for a, hit in zip(alerts, result.alert_hits, strict=True):
        if hit or len(false_cards) >= max_items:
            continue
        src = ""
        if a.evidence and Path(a.evidence).is_file():
            src = _file_uri(Path(a.evidence))
        else:
            home = by_stream.get(a.stream)
            frame = grab_frame(home.video, a.frame) if home else None
            if frame is not None:
                crop = cut_crops(frame, np.asarray([a.box], np.float32), 128)[0]
                src = _data_uri(_side_by_side(crop, _gallery_image(gallery, a.brand)))
        if not src:
            continue
        false_cards.append(
            f"<figure class='card false'><img alt='false alert {esc(a.brand)}' src='{src}'>"
            f"<figcaption><b>false alert</b>: {esc(a.brand)}, score {a.score:.2f}"
            f"<br>on: {esc(false_alert_kind(a, by_stream.get(a.stream)).replace('_', ' '))}"
            f"<br>clip {esc(a.stream)}, t={a.t:.1f}s (frame {a.frame})</figcaption></figure>"
        )
    failed = metrics.get("failed_clips") or []
    failed_note = (
        f"<p id='failed' style='color:#c53030'><b>{len(failed)} of {len(clips)} clips could not be read</b> "
        f"({esc(', '.join(failed))}): their counterfeits count as missed, so these figures are not a "
        "measurement of the models. Fix or remove those clips and run again.</p>"
        if failed
        else ""
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fakewatch evaluation</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1a202c; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ padding: .3em .8em; border-bottom: 1px solid #e2e8f0; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.card {{ margin: 0; border: 1px solid #cbd5e0; padding: .4em; border-radius: 6px; }}
.card img {{ display: block; }}
figcaption {{ font-size: .85em; margin-top: .3em; }}
.miss {{ border-color: #dd6b20; }} .false {{ border-color: #c53030; }}
</style></head><body>
<h1>fakewatch evaluation</h1>
{failed_note}<p>{len(clips)} clips, {metrics.get("counts", {}).get("hours", 0) * 60:.1f} minutes of video.
Each picture shows the stream crop (left) beside the nearest authentic gallery image (right).</p>
<h2>Headline figures</h2>
<table id="metrics"><tr><th></th><th>measured</th><th>95% interval (clips resampled)</th></tr>{rows}</table>
<h2>Counts</h2><table id="counts">{counts}</table>
<h2>Recall by counterfeit family</h2>
<table id="families"><tr><th></th><th>fakes</th><th>caught</th><th>event recall</th></tr>{families}</table>
<h2>Why the missed counterfeits were missed</h2>
<p>The furthest check each missed fake reached, its tracks' verdicts replayed from the run's log.</p>
<table id="miss-causes">{cause_rows or "<tr><td>Not known (alerts read from a file).</td></tr>"}</table>
<h2>What the false alerts fell on</h2><table id="false-kinds">{kinds}</table>
<h2>Precision and recall</h2>
<img id="pr-curve" alt="precision/recall curve" src="{_file_uri(curve_png)}">
<h2 id="missed">Missed counterfeits ({len([o for o in result.objects if not o.caught])})</h2>
<div class="grid">{"".join(missed_cards) or "<p>None.</p>"}</div>
<h2 id="false-alerts">False alerts ({result.false_alerts})</h2>
<div class="grid">{"".join(false_cards) or "<p>None.</p>"}</div>
<script>
// Records how many pictures the browser decoded, so an automated check can see them rendered.
window.addEventListener("load", () => {{
  const imgs = Array.from(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.imagesShown = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
}});
</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
