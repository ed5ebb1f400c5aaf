"""Detector frames per second at 640x360 on one CPU core (floor: 40).

Baselines in the same run: the bare ONNX graph without decoding and NMS, run as the detector
runs it (frames one at a time on the CPU), so the cost of the numpy post-processing shows; and
the graph on the whole batch at once, what ``detector.cpu_frames_per_run: 0`` would do.

Also at the network's own input size (800x448 for the shipped model, what replay's 720p frames are
resized to): the graph through the session pinned to that shape, which the detector uses, beside
the free-shape session in the same run.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from _common import rate, report

from pipeline.infer.detector import OnnxDetector
from pipeline.infer.models import MODELS_DIR
from pipeline.synth.marks import MarkLibrary
from pipeline.synth.render import random_scene


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    library = MarkLibrary.from_folder(MODELS_DIR.parent / "data" / "marks")
    rng = np.random.default_rng(0)
    frames = [random_scene(rng, [(m.mask, m.colour) for m in library[:3]])[0] for _ in range(args.batch)]
    with OnnxDetector(threads=1, providers=["CPUExecutionProvider"]) as det:
        batch = np.stack(frames)

        def graph_only() -> int:
            det.run_network(batch)
            return len(frames)

        def graph_whole_batch() -> int:
            det.session.run(batch)
            return len(frames)

        def full() -> int:
            det.detect(frames)
            return len(frames)

        base = rate(graph_only, args.seconds)
        whole = rate(graph_whole_batch, args.seconds)
        fps = rate(full, args.seconds)
        pinned = free = None
        if det.pinned is not None and det.input_size is not None:
            width, height = det.input_size
            net_frame = np.zeros((1, height, width, 3), np.uint8)
            net_frame[:] = cv2.resize(frames[0], (width, height))
            pinned_session, free_session = det.pinned, det.session

            def one_pinned() -> int:
                pinned_session.run(net_frame)
                return 1

            def one_free() -> int:
                free_session.run(net_frame)
                return 1

            pinned, free = rate(one_pinned, args.seconds), rate(one_free, args.seconds)
        report(
            {
                "benchmark": "detector_speed",
                "input": "640x360",
                "threads": 1,
                "batch": args.batch,
                "frames_per_s": round(fps, 1),
                "baseline_graph_only_frames_per_s": round(base, 1),
                "baseline_graph_whole_batch_frames_per_s": round(whole, 1),
                "floor": 40,
                "model": det.version,
                "network_input": "x".join(map(str, det.input_size)) if det.input_size else None,
                "pinned_graph_frames_per_s": round(pinned, 1) if pinned else None,
                "baseline_free_graph_frames_per_s": round(free, 1) if free else None,
            }
        )


if __name__ == "__main__":
    main()
