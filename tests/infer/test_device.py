"""The GPU path (one upload, crops cut and embedded on the device) run on the CPU provider,
against the host path: same detections, near-identical embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.boxes import cut_crops
from pipeline.infer.detector import OnnxDetector
from pipeline.infer.device import DevicePipeline
from pipeline.infer.embedder import OnnxEmbedder
from pipeline.infer.models import MODELS_DIR
from pipeline.infer.session import OnnxSession
from pipeline.synth.render import random_scene
from pipeline.types import MARK


@pytest.fixture(scope="module")
def frames(library):
    rng = np.random.default_rng(5)
    # Two sizes in one batch: each size is uploaded once, as its own group.
    sizes = [(640, 360), (640, 360), (480, 270)]
    return [random_scene(rng, [(m.mask, m.colour) for m in library[3:6]], w, h, 40, 100)[0] for w, h in sizes]


def test_device_path_matches_host_path(frames):
    cpu = ["CPUExecutionProvider"]
    with OnnxDetector(providers=cpu) as det, OnnxEmbedder(providers=cpu) as emb:
        device = DevicePipeline(det, emb, MODELS_DIR / "cropper.onnx", cpu)
        dets, chosen, vectors = device.run(frames, min_score=0.35)
        host = det.detect(frames)
        assert len(vectors) == sum(len(c) for c in chosen)
        k = 0
        for img, d_dev, d_host, pick in zip(frames, dets, host, chosen, strict=True):
            np.testing.assert_allclose(d_dev.boxes, d_host.boxes, atol=1e-3)
            marks = (d_host.classes == MARK) & (d_host.scores >= 0.35)
            assert np.array_equal(np.nonzero(marks)[0], pick)
            if len(pick):
                ref = emb.embed(cut_crops(img, d_host.boxes[pick], emb.crop_size))
                got = vectors[k : k + len(pick)]
                inside = _inside(d_host.boxes[pick], img.shape)
                cos = np.minimum(
                    np.sum(ref.authenticity * got.authenticity, axis=1), np.sum(ref.identity * got.identity, axis=1)
                )
                # Crops away from the frame edge are cut from the same whole-pixel region on both
                # paths (a small mark enlarged 3x differed by 0.97 when the device cut half pixels).
                assert np.all(cos[inside] > 0.995), cos
                k += len(pick)
        device.close()


def _inside(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from pipeline.boxes import square_boxes

    sq = square_boxes(boxes)
    return (sq[:, 0] >= 0) & (sq[:, 1] >= 0) & (sq[:, 2] <= shape[1]) & (sq[:, 3] <= shape[0])


def test_run_bound_keeps_outputs_on_device():
    with OnnxSession(MODELS_DIR / "cropper.onnx", ["CPUExecutionProvider"]) as crop:
        frames = crop.upload(np.full((1, 100, 100, 3), 77, np.uint8))
        out = crop.run_bound(
            {"frames": frames, "rois": np.array([[10, 10, 50, 50]], np.float32), "batch": np.zeros(1, np.int64)},
            keep_on_device=("crops",),
        )
        value = out["crops"]
        side = crop.output_shapes[0][1]
        assert not isinstance(value, np.ndarray)
        assert value.numpy().shape == (1, side, side, 3) and (value.numpy() == 77).all()


def test_cropper_of_another_crop_size_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from models.training import cropper
    from models.training.export import record

    cpu = ["CPUExecutionProvider"]
    with OnnxDetector(providers=cpu) as det, OnnxEmbedder(providers=cpu) as emb:
        path = tmp_path / "cropper.onnx"
        onnx.save(cropper.build(emb.crop_size + 16), str(path))
        record(tmp_path / "manifest.json", path, "cropper")
        with pytest.raises(ValueError, match=f"cuts {emb.crop_size + 16} px crops but the embedder takes"):
            DevicePipeline(det, emb, path, cpu)
