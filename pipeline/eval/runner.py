"""Running the replay pipeline over labelled clips and scoring what it raised."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.alerts import Alert, EvidenceWriter, JsonlSink, read_alerts
from pipeline.config import Config
from pipeline.eval.scoring import Clip, Score, score
from pipeline.ingest.source import FFmpegSource, Sampling
from pipeline.spine import SourceResult, Spine, run_sources


def run_clips(
    clips: Sequence[Clip],
    index: str | Path,
    config: Config,
    out: Path,
    sampling: Sampling,
    concurrency: int = 4,
    on_frame: Callable[..., None] | None = None,
) -> tuple[list[Alert], dict[str, SourceResult]]:
    """Replay every clip through the spine; alerts go to ``out/alerts.jsonl`` and evidence."""
    out.mkdir(parents=True, exist_ok=True)
    alerts_path = out / "alerts.jsonl"
    alerts_path.unlink(missing_ok=True)
    results: dict[str, SourceResult] = {}
    with Spine.from_config(config, index, [JsonlSink(alerts_path)], EvidenceWriter(out / "evidence")) as spine:
        for i in range(0, len(clips), concurrency):
            group = clips[i : i + concurrency]
            sources = [FFmpegSource(c.video, c.stream, sampling) for c in group]
            results.update(run_sources(spine, sources, policy="block", on_frame=on_frame))
            for c in group:
                spine.end_stream(c.stream)
    return read_alerts(alerts_path) if alerts_path.exists() else [], results


def write_metrics(path: Path, result: Score, extra: dict | None = None) -> dict:
    """Write metrics.json: the section-4 figures with their counts."""
    data = result.to_dict() | (extra or {})
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data
