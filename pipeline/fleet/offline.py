"""Recorded clips spread over a Ray cluster (``fakewatch replay --ray``, ``evaluate --ray``).

A pool of replay actors, each holding one spine (models loaded once per actor), takes one clip
at a time and runs it through ``run_sources`` exactly as a single machine would; the driver gets
back the clip's result, its alerts and, for evaluation, what was seen on each sampled frame
(crops stripped). Alert ids depend only on stream, track, frame and brand, so the same clips give
the same alerts with and without Ray. Evidence images are written by the actors to the evidence
folder, which on a multi-node cluster must be shared storage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.alerts import Alert, EvidenceWriter
from pipeline.config import Config
from pipeline.fleet import connect, require_ray
from pipeline.ingest.source import FFmpegSource, Sampling
from pipeline.spine import SourceResult, Spine, run_sources
from pipeline.types import Frame
from pipeline.verdict import MarkSample

ray = require_ray()


@dataclass
class ClipOutcome:
    """What one clip gave: its run result, its alerts, and (when observed) each sampled frame's marks."""

    result: SourceResult
    alerts: list[Alert]
    frames: dict[tuple[str, int], tuple[float, list[MarkSample]]]


class _Collect:
    """An alert sink that keeps alerts in memory for the driver."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def write(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def close(self) -> None:
        pass


class ReplayActor:
    """One spine on one Ray worker process; replays a clip per call."""

    def __init__(self, config: Config, index: str, evidence: str) -> None:
        self.sink = _Collect()
        self.spine = Spine.from_config(config, index, [self.sink], EvidenceWriter(evidence))

    def replay(
        self, stream: str, video: str, sampling: Sampling, observe: bool, seller: str | None = None
    ) -> ClipOutcome:
        self.sink.alerts = []
        frames: dict[tuple[str, int], tuple[float, list[MarkSample]]] = {}

        def keep(frame: Frame, samples: list[MarkSample]) -> None:
            frames[(frame.stream, frame.index)] = (frame.t, [dataclasses.replace(s, crop=None) for s in samples])

        self.spine.observer = keep if observe else None
        self.spine.set_seller(stream, seller)
        results = run_sources(self.spine, [FFmpegSource(Path(video), stream, sampling)], policy="block")
        self.spine.end_stream(stream)
        return ClipOutcome(results[stream], self.sink.alerts, frames)


def replay_on_ray(
    config: Config,
    index: str | Path,
    clips: Sequence[tuple[str, Path]],
    sampling: Sampling,
    evidence: str | Path,
    address: str | None = None,
    observe: bool = False,
    seller: str | None = None,
) -> Iterator[tuple[str, ClipOutcome]]:
    """Replay ``(stream, video)`` pairs on the cluster; yields each clip's outcome as it finishes.

    ``seller``, where given, is the seller whose streams the clips are (``Spine.set_seller``).

    Joins the cluster at ``address`` (or ``ray.address``; a local one when both are empty) unless
    Ray is already initialised in this process, and leaves it again at the end.
    """
    rc = config.ray
    started = connect(config, address)
    actors = []
    try:
        n = rc.offline_actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        n = max(1, min(n, len(clips)))
        actor = ray.remote(ReplayActor).options(num_cpus=1)
        actors = [actor.remote(config, str(index), str(evidence)) for _ in range(n)]
        todo = list(clips)
        running: dict = {}
        free = list(actors)
        while todo or running:
            while todo and free:
                stream, video = todo.pop(0)
                a = free.pop()
                running[a.replay.remote(stream, str(video), sampling, observe, seller)] = (stream, a)
            done, _ = ray.wait(list(running), num_returns=1)
            stream, a = running.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # one failing clip never takes the run down
                outcome = ClipOutcome(SourceResult(stream, error=f"{stream}: {type(exc).__name__}: {exc}"), [], {})
                if isinstance(exc, ray.exceptions.RayActorError):  # its process died: a fresh one
                    actors.remove(a)
                    a = actor.remote(config, str(index), str(evidence))
                    actors.append(a)
            free.append(a)
            yield stream, outcome
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()
